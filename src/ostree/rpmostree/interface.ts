// Names and the introspection subset of rpm-ostree's D-Bus API (org.projectatomic.rpmostree1) that
// the driver uses. Written from coreos/rpm-ostree src/daemon/org.projectatomic.rpmostree1.xml
// (tag v2026.2, commit d5ef5f0c); handed to dbus-next so a proxy needs no Introspect round trip.
// The member names and signatures are checked live against the test stand-in by
// tests/integration/ostree-rpmostree-interface.test.ts.
export const RPMOSTREE_BUS_NAME = 'org.projectatomic.rpmostree1';
export const SYSROOT_PATH = '/org/projectatomic/rpmostree1/Sysroot';
export const SYSROOT_IFACE = 'org.projectatomic.rpmostree1.Sysroot';
export const OS_IFACE = 'org.projectatomic.rpmostree1.OS';
export const TRANSACTION_IFACE = 'org.projectatomic.rpmostree1.Transaction';

export const RPMOSTREE_INTROSPECTION = `<node>
  <interface name="${SYSROOT_IFACE}">
    <property name="Booted" type="o" access="read"/>
    <property name="ActiveTransaction" type="(sss)" access="read"/>
    <property name="ActiveTransactionPath" type="s" access="read"/>
    <property name="Deployments" type="aa{sv}" access="read"/>
    <method name="RegisterClient"><arg type="a{sv}" name="options" direction="in"/></method>
    <method name="UnregisterClient"><arg type="a{sv}" name="options" direction="in"/></method>
    <method name="Reload"/>
    <method name="GetOS"><arg name="name" type="s" direction="in"/><arg name="object_path" type="o" direction="out"/></method>
  </interface>
  <interface name="${OS_IFACE}">
    <property name="BootedDeployment" type="a{sv}" access="read"/>
    <property name="DefaultDeployment" type="a{sv}" access="read"/>
    <property name="RollbackDeployment" type="a{sv}" access="read"/>
    <method name="Rollback"><arg type="a{sv}" name="options" direction="in"/><arg type="s" name="transaction_address" direction="out"/></method>
    <method name="Cleanup"><arg type="as" name="elements" direction="in"/><arg type="s" name="transaction_address" direction="out"/></method>
    <method name="UpdateDeployment"><arg type="a{sv}" name="modifiers" direction="in"/><arg type="a{sv}" name="options" direction="in"/><arg type="s" name="transaction_address" direction="out"/></method>
    <method name="FinalizeDeployment"><arg type="a{sv}" name="options" direction="in"/><arg type="s" name="transaction_address" direction="out"/></method>
  </interface>
  <interface name="org.freedesktop.DBus.Properties">
    <method name="Get"><arg type="s" name="interface_name" direction="in"/><arg type="s" name="property_name" direction="in"/><arg type="v" name="value" direction="out"/></method>
    <method name="GetAll"><arg type="s" name="interface_name" direction="in"/><arg type="a{sv}" name="props" direction="out"/></method>
  </interface>
</node>`;
