#!/usr/bin/python3
# The part of the rpm-ostree STAND-IN (tests/helpers/rpmostree-standin.py) that runs INSIDE the
# simulated booted system, through the OSTree testbed's enter.sh, so that libostree sees a booted
# deployment and the sysroot's repo with its /etc/ostree/remotes.d — as rpm-ostreed does on a real
# machine. The stand-in runs it as `python3 -c <this file's text> COMMAND ARGS...` (a path on the
# host is not visible inside the chroot; argv is). Not rpm-ostree: see the stand-in's header.
#
#   list                             the deployments as JSON (one line)
#   pull REMOTE REF CHECKSUM         pulls one commit with libostree (GPG as the remote's gpg-verify
#                                    says); progress lines "P fetched requested bytes
#                                    outstanding-fetches outstanding-writes scanned-metadata
#                                    metadata-fetched outstanding-metadata", then "OK <checksum>"
#   write rollback OSNAME            the rollback deployment becomes the default (rpm-ostree Rollback)
#   write cleanup OSNAME WHAT        WHAT: comma list of pending, rollback, base (rpm-ostree Cleanup)
import json
import os
import sys
import threading

import gi

gi.require_version('OSTree', '1.0')
from gi.repository import GLib, OSTree  # noqa: E402


def list_deployments():
    s = OSTree.Sysroot.new_default()
    s.load(None)
    repo = s.repo()
    booted = s.get_booted_deployment()
    locked = os.path.exists('/run/ostree/staged-deployment-locked')
    out = []
    for d in s.get_deployments():
        ok, commit = repo.load_variant(OSTree.ObjectType.COMMIT, d.get_csum())
        meta = commit.get_child_value(0)
        version = meta.lookup_value('version', None)
        origin = d.get_origin()
        refspec = None
        if origin is not None:
            try:
                refspec = origin.get_string('origin', 'refspec')
            except Exception:
                pass
        pending, rollback = s.query_deployments_for(d.get_osname())
        out.append({
            'id': '%s-%s.%d' % (d.get_osname(), d.get_csum(), d.get_deployserial()),
            'osname': d.get_osname(), 'serial': d.get_deployserial(), 'checksum': d.get_csum(),
            'version': version.get_string() if version is not None else None,
            'timestamp': OSTree.commit_get_timestamp(commit), 'origin': refspec,
            'booted': booted is not None and booted.equal(d), 'staged': d.is_staged(),
            'finalization-locked': bool(d.is_staged() and locked), 'pinned': d.is_pinned(),
            'is-pending': pending is not None and pending.equal(d),
            'is-rollback': rollback is not None and rollback.equal(d),
        })
    print(json.dumps({'booted-osname': booted.get_osname() if booted else None, 'deployments': out}))


def pull(argv):
    remote, ref, checksum = argv
    s = OSTree.Sysroot.new_default()
    s.load(None)
    repo = s.repo()
    progress = OSTree.AsyncProgress.new()
    stop = threading.Event()
    def report():
        while not stop.wait(0.05):
            g = progress.get_uint
            print('P %d %d %d %d %d %d %d %d' % (g('fetched'), g('requested'), progress.get_uint64('bytes-transferred'), g('outstanding-fetches'),
                                                g('outstanding-writes'), g('scanned-metadata'), g('metadata-fetched'), g('outstanding-metadata-fetches')), flush=True)
    th = threading.Thread(target=report, daemon=True)
    th.start()
    try:
        repo.pull_with_options(remote, GLib.Variant('a{sv}', {'refs': GLib.Variant('as', [ref]), 'override-commit-ids': GLib.Variant('as', [checksum])}), progress, None)
    except GLib.Error as e:
        sys.stderr.write(e.message + '\n')
        sys.exit(1)
    finally:
        stop.set()
        th.join()
    ok, rev = repo.resolve_rev('%s:%s' % (remote, ref), False)
    if rev != checksum:
        sys.stderr.write('after the pull %s:%s is %s, not %s\n' % (remote, ref, rev, checksum))
        sys.exit(1)
    print('OK %s' % rev, flush=True)


def write(argv):
    cmd, osname = argv[0], argv[1]
    s = OSTree.Sysroot.new_default()
    s.lock()
    try:
        s.load(None)
        deps = list(s.get_deployments())
        pending, rollback = s.query_deployments_for(osname)
        if cmd == 'rollback':
            if rollback is None:
                sys.stderr.write('No rollback deployment found\n')
                sys.exit(2)
            new = [rollback] + [d for d in deps if not d.equal(rollback)]
            print('Moving %s.%d to be first deployment' % (rollback.get_csum(), rollback.get_deployserial()))
        elif cmd == 'cleanup':
            what = argv[2].split(',')
            drop = [d for d in (pending if 'pending' in what else None, rollback if 'rollback' in what else None) if d is not None]
            new = [d for d in deps if not any(d.equal(x) for x in drop)]
            for d in drop:
                print('Deleting deployment %s.%d' % (d.get_csum(), d.get_deployserial()))
        else:
            sys.exit('unknown command ' + cmd)
        if [d.get_index() for d in new] != [d.get_index() for d in deps] or len(new) != len(deps):
            s.write_deployments(new, None)
        if cmd == 'cleanup' and 'base' in argv[2].split(','):
            s.cleanup(None)
    finally:
        s.unlock()


if __name__ == '__main__':
    command, rest = sys.argv[1], sys.argv[2:]
    if command == 'list':
        list_deployments()
    elif command == 'pull':
        pull(rest)
    elif command == 'write':
        write(rest)
    else:
        sys.exit('unknown command %s' % command)
