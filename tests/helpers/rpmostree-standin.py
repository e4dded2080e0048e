#!/usr/bin/python3
# A STAND-IN for rpm-ostree's daemon (rpm-ostreed), for tests only. Debian 12 has no rpm-ostree,
# so this speaks the subset of its D-Bus API that ota-agent's rpm-ostree driver uses, with the real
# names, members and signatures (from coreos/rpm-ostree src/daemon/org.projectatomic.rpmostree1.xml,
# tag v2026.2, commit d5ef5f0cb5ace53f40a8d92933cc87e69ad8c7f4), on a private dbus-daemon, and
# does the work with the real libostree (python3-gi) and the real `ostree` tool on the temp sysroot
# of tests/helpers/ostree-testbed.ts. It is NOT rpm-ostree: no packages, no polkit, no rpm-md,
# no automatic updates, no container images, no layering.
#
# What it copies from the real daemon, because the driver depends on it:
#   - every transaction method returns the address of a private peer-to-peer D-Bus server
#     (unix:path=<this boot's /run>/rpm-ostree-transaction.sock, like /run/rpm-ostree-transaction.sock),
#     exporting org.projectatomic.rpmostree1.Transaction at "/"; nothing runs until a client calls
#     Start(); Start on an already started transaction returns false; a client that connects after the
#     end gets Finished again on Start; the transaction stays the Sysroot's ActiveTransaction /
#     ActiveTransactionPath until it has finished and every peer has disconnected; if the initiating
#     client leaves the bus before Start, the transaction is dropped;
#   - one transaction at a time ("Transaction in progress: ..." as a G_IO_ERROR_BUSY);
#   - UpdateDeployment with set-refspec/set-revision pulls the commit with libostree (the remote's
#     gpg-verify decides about signatures), stages it (`ostree admin deploy --stage`), and with
#     lock-finalization writes /run/ostree/staged-deployment-locked, which ostree's finalize-staged
#     honours; download-only stops after the pull, cache-only skips it;
#   - FinalizeDeployment checks the staged checksum, unlocks and then reboots (the real daemon runs
#     `systemctl reboot`; the stand-in calls logind's Reboot on the same bus, i.e. the systemd
#     stand-in of tests/helpers/systemd-standin.ts);
#   - Rollback and Cleanup(pending-deploy, rollback-deploy, base) rewrite the deployment list with
#     libostree, like rpm-ostree's transactions; deployment dicts carry id, osname, serial, checksum,
#     version, timestamp, origin, booted, staged, finalization-locked, pinned.
#
# Everything that needs "the booted system" runs through --enter (the testbed's enter.sh, which runs
# a command inside the simulated booted deployment). The daemon is started per boot by the tests,
# like rpm-ostreed is per boot on a real machine.
#
# Usage: rpmostree-standin.py --bus ADDRESS --enter ENTER_SH --sysroot HOST_SYSROOT --run-dir HOST_RUN
#                             [--python /usr/bin/python3] [--fault stage-booted-commit]
# Logs one line per event on stderr ("standin: ..."); prints "ready" on stdout once it owns the name.
import argparse
import json
import os
import subprocess
import sys
import threading
import traceback

import gi

gi.require_version('OSTree', '1.0')
from gi.repository import Gio, GLib, OSTree  # noqa: E402

BUS_NAME = 'org.projectatomic.rpmostree1'
BASE_PATH = '/org/projectatomic/rpmostree1'
SYSROOT_PATH = BASE_PATH + '/Sysroot'
TXN_IFACE = 'org.projectatomic.rpmostree1.Transaction'

# The subset of the upstream introspection (same names, types, argument names) that is served.
INTROSPECTION = '''
<node>
  <interface name="org.projectatomic.rpmostree1.Sysroot">
    <property name="Booted" type="o" access="read"/>
    <property name="Path" type="s" access="read"/>
    <property name="ActiveTransaction" type="(sss)" access="read"/>
    <property name="ActiveTransactionPath" type="s" access="read"/>
    <property name="AutomaticUpdatePolicy" type="s" access="read"/>
    <property name="Deployments" type="aa{sv}" access="read"/>
    <method name="RegisterClient"><arg type="a{sv}" name="options" direction="in"/></method>
    <method name="UnregisterClient"><arg type="a{sv}" name="options" direction="in"/></method>
    <method name="Reload"/>
    <method name="GetOS">
      <arg name="name" type="s" direction="in"/>
      <arg name="object_path" type="o" direction="out"/>
    </method>
  </interface>
  <interface name="org.projectatomic.rpmostree1.OS">
    <property name="BootedDeployment" type="a{sv}" access="read"/>
    <property name="DefaultDeployment" type="a{sv}" access="read"/>
    <property name="RollbackDeployment" type="a{sv}" access="read"/>
    <property name="CachedUpdate" type="a{sv}" access="read"/>
    <property name="HasCachedUpdateRpmDiff" type="b" access="read"/>
    <property name="Name" type="s" access="read"/>
    <method name="Rollback">
      <arg type="a{sv}" name="options" direction="in"/>
      <arg type="s" name="transaction_address" direction="out"/>
    </method>
    <method name="Cleanup">
      <arg type="as" name="elements" direction="in"/>
      <arg type="s" name="transaction_address" direction="out"/>
    </method>
    <method name="UpdateDeployment">
      <arg type="a{sv}" name="modifiers" direction="in"/>
      <arg type="a{sv}" name="options" direction="in"/>
      <arg type="s" name="transaction_address" direction="out"/>
    </method>
    <method name="FinalizeDeployment">
      <arg type="a{sv}" name="options" direction="in"/>
      <arg type="s" name="transaction_address" direction="out"/>
    </method>
  </interface>
</node>
'''
TRANSACTION_INTROSPECTION = '''
<node>
  <interface name="org.projectatomic.rpmostree1.Transaction">
    <property name="Title" type="s" access="read"/>
    <property name="InitiatingClientDescription" type="s" access="read"/>
    <method name="Cancel"/>
    <method name="Start"><arg type="b" name="started" direction="out"/></method>
    <signal name="Finished"><arg name="success" type="b"/><arg name="error_message" type="s"/></signal>
    <signal name="Message"><arg name="text" type="s"/></signal>
    <signal name="TaskBegin"><arg name="text" type="s"/></signal>
    <signal name="TaskEnd"><arg name="text" type="s"/></signal>
    <signal name="PercentProgress"><arg name="text" type="s"/><arg name="percentage" type="u"/></signal>
    <signal name="DownloadProgress">
      <arg name="time" type="(tt)"/><arg name="outstanding" type="(uu)"/><arg name="metadata" type="(uuu)"/>
      <arg name="delta" type="(uuut)"/><arg name="content" type="(uu)"/><arg name="transfer" type="(tt)"/>
    </signal>
    <signal name="ProgressEnd"/>
  </interface>
</node>
'''

# What runs inside the booted system (through --enter) lives in rpmostree-standin-booted.py; its
# text is passed as `python3 -c` (the host path is not visible inside the chroot).
BOOTED_PY = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'rpmostree-standin-booted.py')).read()


def log(msg):
    sys.stderr.write('standin: %s\n' % msg)
    sys.stderr.flush()


def object_path_for(osname):
    # rpmostreed_generate_object_path: characters outside [A-Za-z0-9_] become "_".
    return BASE_PATH + '/' + ''.join(c if c.isalnum() or c == '_' else '_' for c in osname)


def deployment_dict(d):
    """The a{sv} the real daemon publishes for a deployment (the keys the driver reads)."""
    if d is None:
        return {}
    v = {
        'id': GLib.Variant('s', d['id']),
        'osname': GLib.Variant('s', d['osname']),
        'serial': GLib.Variant('i', d['serial']),
        'checksum': GLib.Variant('s', d['checksum']),
        'timestamp': GLib.Variant('t', d['timestamp']),
        'booted': GLib.Variant('b', d['booted']),
        'staged': GLib.Variant('b', d['staged']),
        'pinned': GLib.Variant('b', d['pinned']),
        'unlocked': GLib.Variant('s', 'none'),
    }
    if d['version'] is not None:
        v['version'] = GLib.Variant('s', d['version'])
    if d['origin'] is not None:
        v['origin'] = GLib.Variant('s', d['origin'])
    if d['finalization-locked']:
        v['finalization-locked'] = GLib.Variant('b', True)
    return v


def deployment_variant(d):
    return GLib.Variant('a{sv}', deployment_dict(d))


class TxnError(Exception):
    pass


class Transaction:
    """One transaction: a private peer-to-peer D-Bus server and the work, run in a thread after Start."""

    def __init__(self, daemon, invocation, title, work, reboot_after=False):
        self.daemon = daemon
        self.title = title
        self.work = work
        self.reboot_after = reboot_after
        self.method = invocation.get_method_name()
        self.sender = invocation.get_sender()
        self.object_path = invocation.get_object_path()
        self.peers = []
        self.started = False
        self.finished = None  # (success, message) once done
        self.cancellable = Gio.Cancellable()
        self.socket = os.path.join(daemon.run_dir, 'rpm-ostree-transaction.sock')
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        self.server = Gio.DBusServer.new_sync('unix:path=%s' % self.socket, Gio.DBusServerFlags.NONE, Gio.dbus_generate_guid(), None, None)
        os.chmod(self.socket, 0o666)
        self.server.connect('new-connection', self.on_new_connection)
        self.server.start()
        self.address = self.server.get_client_address()
        # Until Start, the transaction belongs to its caller: if the caller leaves, it is dropped.
        self.watch = Gio.bus_watch_name_on_connection(daemon.bus, self.sender, Gio.BusNameWatcherFlags.NONE, None, self.on_owner_vanished)
        log('transaction %s (%s) created at %s for %s' % (self.method, title, self.address, self.sender))

    def on_new_connection(self, server, conn):
        conn.register_object('/', self.daemon.txn_info.interfaces[0], self.on_call, self.on_get, None)
        conn.connect('closed', self.on_closed)
        self.peers.append(conn)
        creds = conn.get_peer_credentials()
        log('process [pid: %s] connected to transaction progress' % (creds.get_unix_pid() if creds else '?'))
        return True

    def on_closed(self, conn, remote_vanished, error):
        if conn in self.peers:
            self.peers.remove(conn)
        log('process disconnected from transaction progress')
        self.maybe_close()

    def on_owner_vanished(self, conn, name):
        if not self.started and self.finished is None:
            log('transaction owner %s vanished before Start: dropping the transaction' % name)
            self.finish(False, 'The initiating client vanished before the transaction started')

    def on_get(self, conn, sender, path, iface, prop):
        if prop == 'Title':
            return GLib.Variant('s', self.title)
        if prop == 'InitiatingClientDescription':
            return GLib.Variant('s', '[sender: %s]' % self.sender)
        return None

    def on_call(self, conn, sender, path, iface, method, params, invocation):
        if method == 'Start':
            started = False
            if not self.started and self.finished is None:
                started = self.started = True
                if self.watch:
                    Gio.bus_unwatch_name(self.watch)
                    self.watch = 0
                threading.Thread(target=self.run, daemon=True).start()
            log('Start -> %s' % started)
            invocation.return_value(GLib.Variant('(b)', (started,)))
            if self.finished is not None:
                # Like the real daemon: a late client gets Finished on its own connection.
                conn.emit_signal(None, '/', TXN_IFACE, 'Finished', GLib.Variant('(bs)', self.finished))
        elif method == 'Cancel':
            self.cancellable.cancel()
            invocation.return_value(None)
        else:
            invocation.return_dbus_error('org.freedesktop.DBus.Error.UnknownMethod', 'no such method %s' % method)

    # ---- used by the work, from the worker thread (GDBus emission is thread-safe) ----------------
    def emit(self, name, params):
        for c in list(self.peers):
            try:
                c.emit_signal(None, '/', TXN_IFACE, name, params)
            except GLib.Error:
                pass

    def message(self, text):
        self.emit('Message', GLib.Variant('(s)', (text,)))

    def percent(self, text, pct):
        self.emit('PercentProgress', GLib.Variant('(su)', (text, max(0, min(100, int(pct))))))

    def run(self):
        try:
            self.work(self)
            result = (True, '')
        except TxnError as e:
            result = (False, str(e))
        except GLib.Error as e:
            result = (False, e.message)
        except Exception as e:  # a bug in the stand-in: say so, do not hang the client
            traceback.print_exc()
            result = (False, 'stand-in error: %s' % e)
        GLib.idle_add(self.finish, *result)

    def finish(self, success, message):
        if self.finished is not None:
            return False
        # Properties first, then Finished: a client reading them after Finished sees the result.
        self.daemon.reload()
        self.finished = (success, message)
        log('transaction %s finished: success=%s %s' % (self.method, success, message))
        self.emit('Finished', GLib.Variant('(bs)', self.finished))
        if success and self.reboot_after:
            self.daemon.reboot()
        self.maybe_close()
        return False

    def maybe_close(self):
        if self.finished is None or self.peers:
            return
        self.server.stop()
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        if self.watch:
            Gio.bus_unwatch_name(self.watch)
            self.watch = 0
        if self.daemon.txn is self:
            self.daemon.txn = None
        log('transaction %s closed' % self.method)


class Daemon:
    def __init__(self, args):
        self.args = args
        self.run_dir = args.run_dir
        self.sysroot_path = args.sysroot
        self.txn = None
        self.rebooting = False
        self.state = {'booted-osname': None, 'deployments': []}
        self.info = Gio.DBusNodeInfo.new_for_xml(INTROSPECTION)
        self.txn_info = Gio.DBusNodeInfo.new_for_xml(TRANSACTION_INTROSPECTION)
        self.bus = Gio.DBusConnection.new_for_address_sync(
            args.bus, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)
        self.reload()
        self.os_names = sorted({d['osname'] for d in self.state['deployments']})
        self.bus.register_object(SYSROOT_PATH, self.info.lookup_interface('org.projectatomic.rpmostree1.Sysroot'), self.on_sysroot_call, self.on_sysroot_get, None)
        for osname in self.os_names:
            self.bus.register_object(object_path_for(osname), self.info.lookup_interface('org.projectatomic.rpmostree1.OS'), self.on_os_call, self.on_os_get, None)
        reply = self.bus.call_sync('org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus', 'RequestName',
                                   GLib.Variant('(su)', (BUS_NAME, 4)), GLib.VariantType('(u)'), Gio.DBusCallFlags.NONE, -1, None)
        if reply.unpack()[0] != 1:
            raise SystemExit('could not own %s (RequestName reply %d)' % (BUS_NAME, reply.unpack()[0]))

    # ---- the booted system ------------------------------------------------------------------------
    def enter(self, argv, check=True):
        p = subprocess.run([self.args.enter] + argv, capture_output=True, text=True, env={**os.environ, 'LC_ALL': 'C'})
        if check and p.returncode != 0:
            raise TxnError((p.stderr or p.stdout).strip().split('\n')[-1] or '%s failed (exit %d)' % (argv[0], p.returncode))
        return p

    def reload(self):
        p = self.enter([self.args.python, '-c', BOOTED_PY, 'list'])
        self.state = json.loads(p.stdout)
        return False

    def deployments(self, osname=None):
        return [d for d in self.state['deployments'] if osname is None or d['osname'] == osname]

    def reboot(self):
        self.rebooting = True
        log('initiating reboot (the real daemon runs `systemctl reboot`; this calls logind Reboot)')

        def done(conn, res):
            try:
                conn.call_finish(res)
            except GLib.Error as e:
                log('reboot request failed: %s' % e.message)
        self.bus.call('org.freedesktop.login1', '/org/freedesktop/login1', 'org.freedesktop.login1.Manager', 'Reboot',
                      GLib.Variant('(b)', (False,)), None, Gio.DBusCallFlags.NONE, -1, None, done)

    # ---- Sysroot ------------------------------------------------------------------------------------
    def on_sysroot_get(self, conn, sender, path, iface, prop):
        if prop == 'Booted':
            b = self.state['booted-osname']
            return GLib.Variant('o', object_path_for(b) if b else '/')
        if prop == 'Path':
            return GLib.Variant('s', '/')
        if prop == 'ActiveTransaction':
            t = self.txn
            return GLib.Variant('(sss)', (t.method, t.sender, t.object_path) if t else ('', '', ''))
        if prop == 'ActiveTransactionPath':
            return GLib.Variant('s', self.txn.address if self.txn else '')
        if prop == 'AutomaticUpdatePolicy':
            return GLib.Variant('s', 'none')
        if prop == 'Deployments':
            return GLib.Variant('aa{sv}', [deployment_dict(d) for d in self.deployments()])
        return None

    def on_sysroot_call(self, conn, sender, path, iface, method, params, invocation):
        if method in ('RegisterClient', 'UnregisterClient'):
            log('%s from %s %s' % (method, sender, json.dumps(params.unpack()[0], default=str)))
            invocation.return_value(None)
        elif method == 'Reload':
            try:
                self.reload()
                invocation.return_value(None)
            except TxnError as e:
                invocation.return_dbus_error('org.freedesktop.DBus.Error.Failed', str(e))
        elif method == 'GetOS':
            name = params.unpack()[0] or self.state['booted-osname']
            if name not in self.os_names:
                invocation.return_dbus_error('org.freedesktop.DBus.Error.InvalidArgs', 'OS name "%s" not found' % name)
            else:
                invocation.return_value(GLib.Variant('(o)', (object_path_for(name),)))

    # ---- OS -----------------------------------------------------------------------------------------
    def osname_of(self, path):
        return next(n for n in self.os_names if object_path_for(n) == path)

    def on_os_get(self, conn, sender, path, iface, prop):
        osname = self.osname_of(path)
        deps = self.deployments(osname)
        if prop == 'BootedDeployment':
            return deployment_variant(next((d for d in deps if d['booted']), None))
        if prop == 'DefaultDeployment':
            return deployment_variant(deps[0] if deps else None)
        if prop == 'RollbackDeployment':
            return deployment_variant(next((d for d in deps if d['is-rollback']), None))
        if prop == 'CachedUpdate':
            return GLib.Variant('a{sv}', {})
        if prop == 'HasCachedUpdateRpmDiff':
            return GLib.Variant('b', False)
        if prop == 'Name':
            return GLib.Variant('s', osname)
        return None

    def on_os_call(self, conn, sender, path, iface, method, params, invocation):
        osname = self.osname_of(path)
        try:
            if self.rebooting:
                raise TxnError('Reboot initiated, cannot start new transaction')
            if self.txn is not None:
                invocation.return_gerror(GLib.Error.new_literal(Gio.io_error_quark(), 'Transaction in progress: %s\n You can cancel the current transaction with `rpm-ostree cancel`' % self.txn.title, Gio.IOErrorEnum.BUSY))
                return
            args = params.unpack()
            if method == 'UpdateDeployment':
                self.txn = self.update_deployment(invocation, osname, args[0], args[1])
            elif method == 'FinalizeDeployment':
                self.txn = self.finalize_deployment(invocation, osname, args[0])
            elif method == 'Rollback':
                self.txn = Transaction(self, invocation, 'rollback', lambda t: self.rollback(t, osname), reboot_after=bool(args[0].get('reboot')))
            elif method == 'Cleanup':
                self.txn = self.cleanup(invocation, osname, args[0])
            invocation.return_value(GLib.Variant('(s)', (self.txn.address,)))
        except TxnError as e:
            invocation.return_dbus_error('org.freedesktop.DBus.Error.Failed', str(e))

    def update_deployment(self, invocation, osname, modifiers, options):
        known_mod = {'set-refspec', 'set-revision'}
        known_opt = {'reboot', 'allow-downgrade', 'skip-branch-check', 'download-only', 'cache-only', 'lock-finalization', 'register-driver', 'initiating-command-line', 'dry-run'}
        for k in modifiers:
            if k not in known_mod:
                raise TxnError('stand-in: modifier "%s" is not implemented' % k)
        for k in options:
            if k not in known_opt:
                raise TxnError('stand-in: option "%s" is not implemented' % k)
        if options.get('download-only') and (options.get('cache-only') or options.get('dry-run')):
            raise TxnError('Cannot specify download-only with cache-only or dry-run')
        refspec = modifiers.get('set-refspec')
        revision = modifiers.get('set-revision')
        if not refspec or ':' not in refspec:
            raise TxnError('stand-in: set-refspec "remote:ref" is required')
        if revision is None:
            raise TxnError('stand-in: set-revision is required')
        checksum = revision[len('revision='):] if revision.startswith('revision=') else revision
        if not OSTree.validate_checksum_string(checksum):
            raise TxnError('stand-in: only set-revision=<checksum> is implemented, not "%s"' % revision)
        if options.get('register-driver'):
            log('update driver registered: %s' % options['register-driver'])
        title = options.get('initiating-command-line') or 'deploy revision=%s%s' % (checksum, ' --lock-finalization' if options.get('lock-finalization') else '')

        def work(t):
            remote, ref = refspec.split(':', 1)
            if not options.get('cache-only'):
                self.pull(t, remote, ref, checksum)
            else:
                repo = OSTree.Repo.new(Gio.File.new_for_path(os.path.join(self.sysroot_path, 'ostree', 'repo')))
                repo.open(None)
                ok, _ = repo.has_object(OSTree.ObjectType.COMMIT, checksum, None)
                if not ok:
                    raise TxnError('Commit %s not found in the local repository (cache-only)' % checksum)
            if options.get('download-only') or options.get('dry-run'):
                t.message('Downloaded %s (download-only): not deployed' % checksum)
                return
            t.emit('TaskBegin', GLib.Variant('(s)', ('Staging deployment',)))
            origin = os.path.join(self.run_dir, 'rpm-ostree-standin.origin')
            with open(origin, 'w') as f:
                f.write('[origin]\nrefspec=%s\noverride-commit=%s\n' % (refspec, checksum))
            target = checksum
            if self.args.fault == 'stage-booted-commit':
                # Fault injection for the driver's own check: stage something else than asked.
                target = next(d['checksum'] for d in self.deployments(osname) if d['booted'])
                log('FAULT: staging the booted commit %s instead of %s' % (target, checksum))
            self.enter(['ostree', 'admin', 'deploy', '--stage', '--os=%s' % osname, '--origin-file=/run/rpm-ostree-standin.origin', target])
            os.unlink(origin)
            if options.get('lock-finalization'):
                # What rpm-ostree does for lock-finalization; ostree's finalize-staged skips it.
                open(os.path.join(self.run_dir, 'ostree', 'staged-deployment-locked'), 'w').close()
            t.emit('TaskEnd', GLib.Variant('(s)', ('Staging deployment',)))
            t.message('Staging deployment...done')
        return Transaction(self, invocation, title, work, reboot_after=bool(options.get('reboot')))

    def pull(self, t, remote, ref, checksum):
        """Pulls inside the booted system (the sysroot's repo sees /etc/ostree/remotes.d there, as
        rpm-ostreed's does); its progress lines are re-emitted as signals."""
        t.emit('TaskBegin', GLib.Variant('(s)', ('Receiving objects',)))
        t.message('Pulling %s:%s@%s' % (remote, ref, checksum))
        start = GLib.get_real_time() // 1000000
        p = subprocess.Popen([self.args.enter, self.args.python, '-u', '-c', BOOTED_PY, 'pull', remote, ref, checksum],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, 'LC_ALL': 'C'})
        t.cancellable.connect(lambda *_: p.kill())
        last = -1
        for line in p.stdout:
            f = line.split()
            if not f or f[0] != 'P':
                continue
            fetched, requested, transferred, of, ow, sm, mf, om = (int(x) for x in f[1:9])
            pct = fetched * 100 // requested if requested else 0
            if pct == last:
                continue
            last = pct
            t.percent('Receiving objects: %d%% (%d/%d)' % (pct, fetched, requested), pct)
            now = GLib.get_real_time() // 1000000
            t.emit('DownloadProgress', GLib.Variant('((tt)(uu)(uuu)(uuut)(uu)(tt))', (
                (start, now - start), (of, ow), (sm, mf, om), (0, 0, 0, 0), (fetched, requested), (transferred, 0))))
        err = p.stderr.read()
        if p.wait() != 0:
            raise TxnError(err.strip().split('\n')[-1] if err.strip() else 'pull failed (exit %d)' % p.returncode)
        t.percent('Receiving objects: 100%', 100)
        t.emit('ProgressEnd', None)
        t.emit('TaskEnd', GLib.Variant('(s)', ('Receiving objects',)))

    def finalize_deployment(self, invocation, osname, options):
        def work(t):
            deps = self.deployments()
            if not deps:
                raise TxnError('No deployments found')
            d = deps[0]
            if not d['staged']:
                raise TxnError('No pending staged deployment found')
            if d['osname'] != osname:
                raise TxnError("Staged deployment is not for osname '%s'" % osname)
            expected = options.get('checksum')
            if expected is None and not options.get('allow-missing-checksum'):
                raise TxnError('Missing expected checksum')
            if expected is not None and expected != d['checksum']:
                raise TxnError('Expected staged base checksum %s, but found %s' % (expected, d['checksum']))
            lock = os.path.join(self.run_dir, 'ostree', 'staged-deployment-locked')
            if not os.path.exists(lock):
                if not options.get('allow-unlocked'):
                    raise TxnError('Staged deployment already unlocked')
            else:
                os.unlink(lock)
            t.message('Finalized deployment; rebooting into %s' % d['checksum'])
        return Transaction(self, invocation, 'finalize-deployment', work, reboot_after=True)

    def rollback(self, t, osname):
        p = self.enter([self.args.python, '-c', BOOTED_PY, 'write', 'rollback', osname], check=False)
        if p.returncode != 0:
            raise TxnError(p.stderr.strip() or 'rollback failed')
        for line in p.stdout.splitlines():
            t.message(line)

    def cleanup(self, invocation, osname, elements):
        known = {'base', 'pending-deploy', 'rollback-deploy', 'repomd'}
        for e in elements:
            if e not in known:
                raise TxnError('Unknown cleanup element "%s"' % e)
        what = ','.join([{'pending-deploy': 'pending', 'rollback-deploy': 'rollback', 'base': 'base'}[e] for e in elements if e != 'repomd'])

        def work(t):
            if 'pending-deploy' in elements and os.path.exists(os.path.join(self.run_dir, 'ostree', 'staged-deployment-locked')):
                os.unlink(os.path.join(self.run_dir, 'ostree', 'staged-deployment-locked'))
            if what:
                p = self.enter([self.args.python, '-c', BOOTED_PY, 'write', 'cleanup', osname, what], check=False)
                if p.returncode != 0:
                    raise TxnError(p.stderr.strip() or 'cleanup failed')
                for line in p.stdout.splitlines():
                    t.message(line)
        return Transaction(self, invocation, 'cleanup %s' % ' '.join(elements), work)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--bus', required=True)
    ap.add_argument('--enter', required=True)
    ap.add_argument('--sysroot', required=True)
    ap.add_argument('--run-dir', required=True)
    ap.add_argument('--python', default='/usr/bin/python3')
    ap.add_argument('--fault', choices=['stage-booted-commit'], help='fault injection for tests of the driver')
    args = ap.parse_args()
    loop = GLib.MainLoop()
    daemon = Daemon(args)
    daemon.bus.connect('closed', lambda *a: loop.quit())
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, 15, lambda: loop.quit() or False)
    log('owns %s; OS objects: %s' % (BUS_NAME, ', '.join(object_path_for(n) for n in daemon.os_names)))
    print('ready', flush=True)
    loop.run()


if __name__ == '__main__':
    main()
