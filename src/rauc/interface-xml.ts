// The part of RAUC's D-Bus introspection the agent uses (rauc 1.8, de.pengutronix.rauc.Installer;
// full XML in shared/research). Passing it to dbus-next skips an Introspect round trip per call.
export const RAUC_BUS_NAME = 'de.pengutronix.rauc';
export const RAUC_PATH = '/';
export const RAUC_INTERFACE = 'de.pengutronix.rauc.Installer';

export const RAUC_INTROSPECTION = `<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
<node>
  <interface name="org.freedesktop.DBus.Properties">
    <method name="Get"><arg type="s" name="interface_name" direction="in"/><arg type="s" name="property_name" direction="in"/><arg type="v" name="value" direction="out"/></method>
    <method name="GetAll"><arg type="s" name="interface_name" direction="in"/><arg type="a{sv}" name="properties" direction="out"/></method>
    <signal name="PropertiesChanged"><arg type="s" name="interface_name"/><arg type="a{sv}" name="changed_properties"/><arg type="as" name="invalidated_properties"/></signal>
  </interface>
  <interface name="de.pengutronix.rauc.Installer">
    <method name="InstallBundle"><arg type="s" name="source" direction="in"/><arg type="a{sv}" name="args" direction="in"/></method>
    <method name="Info"><arg type="s" name="bundle" direction="in"/><arg type="s" name="compatible" direction="out"/><arg type="s" name="version" direction="out"/></method>
    <method name="Mark"><arg type="s" name="state" direction="in"/><arg type="s" name="slot_identifier" direction="in"/><arg type="s" name="slot_name" direction="out"/><arg type="s" name="message" direction="out"/></method>
    <method name="GetSlotStatus"><arg type="a(sa{sv})" name="slot_status_array" direction="out"/></method>
    <method name="GetPrimary"><arg type="s" name="primary" direction="out"/></method>
    <signal name="Completed"><arg type="i" name="result"/></signal>
    <property type="s" name="Operation" access="read"/>
    <property type="s" name="LastError" access="read"/>
    <property type="(isi)" name="Progress" access="read"/>
    <property type="s" name="Compatible" access="read"/>
    <property type="s" name="Variant" access="read"/>
    <property type="s" name="BootSlot" access="read"/>
  </interface>
</node>`;
