// The emulated arm64 device: qemu-system-aarch64 (virt, cortex-a57) booting the image built by
// cross-build/device/build-image.sh. Disks: the root filesystem (a qcow2 overlay over the cached
// rootfs.ext4, so every run starts from the same image and keeps its changes across reboots) and
// the two RAUC slots (copies). Network: user mode with restrict=on; the guest reaches only
// 10.0.2.100:1883 (the host's mosquitto) and 10.0.2.100:8080 (the host's bundle server), each
// connection forwarded by a socat spawned by QEMU (guestfwd cmd:). `-no-reboot`: a reboot in the
// guest powers the VM off; the test boots it again with the slot the simulated bootloader picks.
// Every qemu runs under `timeout`. The serial console (kernel + journal) is saved per boot.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Slot } from './simulated-bootloader.js';

export interface DeviceEnv {
  DEVICE_DIR: string;
  KERNEL: string;
  INITRD: string;
  ROOTFS: string;
  SLOT_A: string;
  SLOT_B: string;
  FLEET_KEY: string;
  PKI_DIR: string;
  COMPATIBLE: string;
  AGENT_PACKAGE: string;
}

const KEYS: (keyof DeviceEnv)[] = ['DEVICE_DIR', 'KERNEL', 'INITRD', 'ROOTFS', 'SLOT_A', 'SLOT_B', 'FLEET_KEY', 'PKI_DIR', 'COMPATIBLE', 'AGENT_PACKAGE'];

/** Reads device.env (KEY=value lines); every key and every file it names must exist. */
export function readDeviceEnv(path: string): DeviceEnv {
  if (!existsSync(path)) throw new Error(`${path} is missing: build the device first with cross-build/device/build-image.sh`);
  const env: Partial<DeviceEnv> = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line);
    if (m && (KEYS as string[]).includes(m[1] as string)) env[m[1] as keyof DeviceEnv] = m[2] as string;
  }
  for (const k of KEYS) {
    const v = env[k];
    if (!v) throw new Error(`${path} has no ${k}: rebuild with cross-build/device/build-image.sh`);
    if (k !== 'COMPATIBLE' && !existsSync(v)) throw new Error(`${k}=${v} (from ${path}) does not exist: rebuild with cross-build/device/build-image.sh`);
  }
  return env as DeviceEnv;
}

export interface BootResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  seconds: number;
}

export class Boot {
  readonly started = Date.now();
  output = '';
  readonly exited: Promise<BootResult>;

  constructor(
    readonly n: number,
    readonly slot: Slot,
    readonly proc: ChildProcess,
    readonly logPath: string,
  ) {
    const file = createWriteStream(logPath);
    const take = (b: Buffer) => {
      this.output += b.toString();
      file.write(b);
    };
    proc.stdout?.on('data', take);
    proc.stderr?.on('data', take);
    this.exited = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        file.end();
        resolve({ code, signal, seconds: (Date.now() - this.started) / 1000 });
      });
    });
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Seconds since this boot's qemu was started. */
  elapsed(): number {
    return (Date.now() - this.started) / 1000;
  }

  /** The last lines of the serial console, for failure messages. */
  tail(lines = 40): string {
    return this.output.split('\n').slice(-lines).join('\n');
  }

  /** Ends this qemu (SIGTERM to `timeout`, which passes it on), waits for it. */
  async kill(): Promise<void> {
    if (this.running) this.proc.kill('SIGTERM');
    await this.exited;
  }
}

export interface QemuDeviceOptions {
  env: DeviceEnv;
  runDir: string;
  brokerPort: number;
  httpPort: number;
  /** Upper bound for one boot (the `timeout` around qemu), seconds. */
  bootTimeoutSeconds?: number;
}

export class QemuDevice {
  readonly shareDir: string;
  private readonly disks: { rootfs: string; slotA: string; slotB: string };
  private boots = 0;
  current: Boot | null = null;

  constructor(private readonly o: QemuDeviceOptions) {
    this.shareDir = join(o.runDir, 'share');
    this.disks = { rootfs: join(o.runDir, 'rootfs.qcow2'), slotA: join(o.runDir, 'slot-a.img'), slotB: join(o.runDir, 'slot-b.img') };
  }

  /** Fresh disks for this run: a copy-on-write overlay of the image, copies of the factory slots. */
  prepareDisks(): void {
    mkdirSync(this.shareDir, { recursive: true });
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', this.o.env.ROOTFS, '-F', 'raw', this.disks.rootfs], { stdio: ['ignore', 'ignore', 'pipe'] });
    copyFileSync(this.o.env.SLOT_A, this.disks.slotA);
    copyFileSync(this.o.env.SLOT_B, this.disks.slotB);
  }

  slotImage(slot: Slot): string {
    return slot === 'A' ? this.disks.slotA : this.disks.slotB;
  }

  /** Powers the device on with rauc.slot=<slot> on the kernel command line. */
  boot(slot: Slot): Boot {
    if (this.current?.running) throw new Error(`boot ${this.current.n} is still running`);
    const n = ++this.boots;
    const fwd = (guestPort: number, hostPort: number) => `guestfwd=tcp:10.0.2.100:${guestPort}-cmd:socat - TCP:127.0.0.1:${hostPort}`;
    const args = [
      '--kill-after=10',
      String(this.o.bootTimeoutSeconds ?? 300),
      'qemu-system-aarch64',
      '-M', 'virt', '-cpu', 'cortex-a57', '-smp', '2', '-m', '1024',
      '-display', 'none', '-serial', 'stdio', '-monitor', 'none', '-no-reboot',
      '-kernel', this.o.env.KERNEL, '-initrd', this.o.env.INITRD,
      '-append', `console=ttyAMA0 root=/dev/vda rw panic=-1 quiet loglevel=3 net.ifnames=0 systemd.show_status=0 rauc.slot=${slot}`,
      '-drive', `file=${this.disks.rootfs},format=qcow2,if=none,id=hd0,cache=unsafe`, '-device', 'virtio-blk-pci,drive=hd0',
      '-drive', `file=${this.disks.slotA},format=raw,if=none,id=hd1,cache=unsafe`, '-device', 'virtio-blk-pci,drive=hd1',
      '-drive', `file=${this.disks.slotB},format=raw,if=none,id=hd2,cache=unsafe`, '-device', 'virtio-blk-pci,drive=hd2',
      '-netdev', `user,id=n0,restrict=on,${fwd(1883, this.o.brokerPort)},${fwd(8080, this.o.httpPort)}`, '-device', 'virtio-net-pci,netdev=n0,romfile=',
      '-virtfs', `local,path=${this.shareDir},mount_tag=hostshare,security_model=none,id=fs0`,
      '-device', 'virtio-rng-pci',
    ];
    const proc = spawn('timeout', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    // A test process that ends early must not leave a VM behind (`timeout` passes SIGTERM on).
    const onExit = () => proc.kill('SIGTERM');
    process.once('exit', onExit);
    proc.once('exit', () => process.removeListener('exit', onExit));
    this.current = new Boot(n, slot, proc, join(this.o.runDir, `boot-${n}-${slot}.log`));
    return this.current;
  }

  /** The serial console of every boot so far. */
  bootLogs(): { name: string; text: string }[] {
    return readdirSync(this.o.runDir)
      .filter((f) => /^boot-\d+-[AB]\.log$/.test(f))
      .map((f) => ({ name: f, text: readFileSync(join(this.o.runDir, f), 'utf8') }));
  }

  async close(): Promise<void> {
    await this.current?.kill();
  }
}
