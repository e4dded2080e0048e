// The one thing the ostree 2022.7 CLI cannot do: make another existing deployment the default
// (no `ostree admin set-default`, no rollback command). libostree can, through GObject
// introspection (python3-gi + gir1.2-ostree-1.0): reorder the deployment list and write it, the
// same thing rpm-ostree's rollback transaction does.
//
// Shipped as a string and run as `python3 -c <source> <args>` (argv, no shell), not as a .py
// file: tsc does not copy non-TS files into dist/, and with a commandPrefix (chroot, namespace,
// container) a temp file written by the agent would not even be visible on the other side,
// while argv always is. Nothing to clean up either.
//
// Usage: <cmd> <sysroot> <osname> [<checksum>]
//   rollback  the deployment after the booted one (libostree's "rollback") becomes the default
//   booted    the booted deployment becomes the default (drops a staged one, like a cancel)
//   checksum  the first deployment of <osname> with <checksum> becomes the default
// Prints one JSON line: {"target": "<csum>.<serial>", "changed": bool, "before": [...], "after": [...]}.
// Exits 2 with a message on stderr when there is no such deployment.
export const DEFAULT_DEPLOYMENT_PY = `
import json, sys
try:
    import gi
    gi.require_version('OSTree', '1.0')
    from gi.repository import Gio, OSTree
except Exception as e:
    sys.stderr.write('python3-gi with the OSTree 1.0 typelib (gir1.2-ostree-1.0) is required: %s\\n' % e)
    sys.exit(3)

cmd, path, osname = sys.argv[1], sys.argv[2], sys.argv[3]
arg = sys.argv[4] if len(sys.argv) > 4 else None
sysroot = OSTree.Sysroot.new(Gio.File.new_for_path(path))
sysroot.lock()
try:
    sysroot.load(None)
    deps = list(sysroot.get_deployments())
    ident = lambda d: '%s.%d' % (d.get_csum(), d.get_deployserial())
    booted = sysroot.get_booted_deployment()
    if cmd == 'rollback':
        if booted is None:
            sys.stderr.write('no booted deployment: cannot tell which one is the rollback\\n')
            sys.exit(2)
        pending, target = sysroot.query_deployments_for(osname)
        if target is None:
            sys.stderr.write('no rollback deployment for %s (deployments: %s)\\n' % (osname, ', '.join(map(ident, deps))))
            sys.exit(2)
    elif cmd == 'booted':
        target = booted
        if target is None:
            sys.stderr.write('no booted deployment\\n')
            sys.exit(2)
    elif cmd == 'checksum':
        target = next((d for d in deps if d.get_osname() == osname and d.get_csum() == arg), None)
        if target is None:
            sys.stderr.write('no deployment of %s with checksum %s\\n' % (osname, arg))
            sys.exit(2)
    else:
        sys.stderr.write('unknown command %s\\n' % cmd)
        sys.exit(2)
    before = [ident(d) for d in deps]
    changed = not (len(deps) > 0 and deps[0].equal(target))
    if changed:
        # A staged deployment that is not first is dropped by libostree: that is the cancel.
        sysroot.write_deployments([target] + [d for d in deps if not d.equal(target)], None)
        sysroot.load(None)
    after = [ident(d) for d in sysroot.get_deployments()]
    print(json.dumps({'target': ident(target), 'changed': changed, 'before': before, 'after': after}))
finally:
    sysroot.unlock()
`;
