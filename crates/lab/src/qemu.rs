//! QEMU machines on the lab bridge: a tap in the server namespace, TCG (no KVM here), BIOS
//! (SeaBIOS) or UEFI (OVMF), the NIC's iPXE ROM from Debian's ipxe-qemu, serial console to a
//! file and, through a socket, from the test's keyboard ([`Vm::send`], [`Vm::login`],
//! [`Vm::shell`]). Stopped by PID and its tap removed on drop.
//!
//! A guest's reboot is a cold one: QEMU ends (`-no-reboot`) and, for a VM that reboots, is
//! started again, as a machine goes through its firmware from power-on. After TCG's own warm
//! reset the next boot of the same VM ran slowly (why is not known; the guest's RAM and QEMU's
//! translated code both outlive it): the stub's 5 MiB initramfs took 35–90 s to unpack after a
//! reboot (under 1 s at power-on), on every VM of a 4-VM reboot.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;

use crate::netns::unique;
use crate::proc::{wait_for_line_after, Proc};
use crate::Lan;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS; the NIC's iPXE ROM does the network boot.
    Bios,
    /// OVMF with the NIC's iPXE ROM (iPXE asks DHCP and fetches the script directly).
    Uefi,
    /// OVMF with no NIC ROM: OVMF's own PXE asks DHCP as a UEFI firmware (arch 7), fetches
    /// `snponly.efi` over TFTP, and that iPXE continues over HTTP.
    UefiNativePxe,
}

/// A kernel, initramfs and command line QEMU boots directly.
#[derive(Debug, Clone, Copy)]
pub struct KernelBoot<'a> {
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    pub append: &'a str,
}

/// How a VM boots.
enum Boot<'a> {
    Network(Firmware),
    Kernel(KernelBoot<'a>),
}

/// A VM's size and behaviour.
#[derive(Debug, Clone, Copy)]
pub struct VmSpec<'a> {
    /// RAM in MiB.
    pub mib: u32,
    /// A reboot of the guest starts it again (a cold boot, through its firmware) instead of
    /// leaving it off.
    pub reboots: bool,
    /// Every frame into and out of the NIC waits for the end of the current period of this
    /// length (QEMU's `filter-buffer`): a delay of 0 up to this, varying with when the frame
    /// comes, each way. Jitter without netem, which the lab's kernels lack; unlike netem's, it
    /// keeps frames in order.
    pub jitter: Option<Duration>,
    /// Raw disk images attached as virtio disks, in this order (`/dev/vda`, `/dev/vdb`, …),
    /// writable as a real disk is: what the guest writes lands in the file.
    pub disks: &'a [PathBuf],
}

impl Default for VmSpec<'_> {
    fn default() -> Self {
        VmSpec { mib: 384, reboots: false, jitter: None, disks: &[] }
    }
}

/// The running QEMU of a VM, and what starting it again after a reboot takes.
struct Qemu {
    proc: Proc,
    /// `Some`: a reboot starts QEMU again with these arguments (the program first).
    again: Option<Vec<OsString>>,
    /// Disks plugged in while it ran ([`Vm::plug_disk`]): still there after a reboot.
    plugged: Vec<PathBuf>,
    /// Where in the console the current boot began.
    boot_from: u64,
    /// The guest powered off (or QEMU ended otherwise): nothing starts it again.
    off: bool,
}

pub struct Vm {
    qemu: Arc<Mutex<Qemu>>,
    /// The thread that starts QEMU again when the guest reboots (VMs that reboot), and the
    /// flag that stops it.
    rebooter: Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>,
    pub console: PathBuf,
    /// Where [`Vm::wait_for`] starts to look in the console (see [`Vm::mark`]).
    mark: usize,
    /// The serial port's input (a unix socket; its output also goes to `console`).
    serial: PathBuf,
    /// Commands run by [`Vm::shell`] so far.
    commands: u32,
    /// QEMU's human monitor (a unix socket).
    monitor: PathBuf,
    pub mac: String,
    tap: String,
    ns: String,
}

impl Vm {
    /// Starts a VM (384 MiB of RAM) that network-boots from the lab bridge.
    pub fn start(lan: &Lan, dir: &Path, name: &str, mac: &str, firmware: Firmware) -> anyhow::Result<Self> {
        Self::start_with_memory(lan, dir, name, mac, firmware, 384)
    }

    /// Like [`Vm::start`], with `mib` MiB of RAM.
    pub fn start_with_memory(lan: &Lan, dir: &Path, name: &str, mac: &str, firmware: Firmware, mib: u32) -> anyhow::Result<Self> {
        Self::start_with(lan, dir, name, mac, firmware, VmSpec { mib, ..VmSpec::default() })
    }

    /// Like [`Vm::start`], as `spec` says.
    pub fn start_with(lan: &Lan, dir: &Path, name: &str, mac: &str, firmware: Firmware, spec: VmSpec<'_>) -> anyhow::Result<Self> {
        Self::spawn(lan, dir, name, mac, spec, &Boot::Network(firmware), true)
    }

    /// A VM (384 MiB) that boots `kernel` and `initrd` with `append` as its command line
    /// directly (no firmware network boot: the tests of the stub's own failures, when there is
    /// no DHCP for PXE either). `link_up = false`: its NIC starts with the link down (see
    /// [`Vm::set_link`]).
    pub fn start_kernel(lan: &Lan, dir: &Path, name: &str, mac: &str, boot: KernelBoot<'_>, link_up: bool) -> anyhow::Result<Self> {
        Self::spawn(lan, dir, name, mac, VmSpec::default(), &Boot::Kernel(boot), link_up)
    }

    fn spawn(lan: &Lan, dir: &Path, name: &str, mac: &str, spec: VmSpec<'_>, boot: &Boot<'_>, link_up: bool) -> anyhow::Result<Self> {
        vm_tests::enter();
        let tap = format!("t{}", unique());
        lan.server.ip(&["tuntap", "add", &tap, "mode", "tap"])?;
        lan.server.ip(&["link", "set", &tap, "master", "br0", "up"])?;
        let console = dir.join(format!("{name}.console"));
        let monitor = dir.join(format!("{name}.monitor"));
        let serial = dir.join(format!("{name}.serial"));
        let mut cmd = lan.server.command("qemu-system-x86_64");
        cmd.args(["-accel", "tcg", "-m", &spec.mib.to_string(), "-smp", "1", "-display", "none", "-no-reboot"]);
        // The serial port: output to the console file whether or not anyone is connected
        // (appended: each boot after a reboot adds to it), input from whoever connects to the
        // socket.
        cmd.args(["-netdev", &format!("tap,id=n0,ifname={tap},script=no,downscript=no")])
            .arg("-chardev")
            .arg(format!("socket,id=ser0,path={},server=on,wait=off,logfile={},logappend=on", serial.display(), console.display()))
            .args(["-serial", "chardev:ser0"])
            .arg("-monitor")
            .arg(format!("unix:{},server=on,wait=off", monitor.display()));
        if let Some(jitter) = spec.jitter {
            anyhow::ensure!(jitter.as_micros() > 0, "a jitter of at least 1 µs");
            cmd.args(["-object", &format!("filter-buffer,id=jitter0,netdev=n0,queue=all,interval={}", jitter.as_micros())]);
        }
        for disk in spec.disks {
            // QEMU's -drive options separate with commas: a comma in the path is doubled.
            cmd.arg("-drive").arg(format!("file={},format=raw,if=virtio", disk.display().to_string().replace(',', ",,")));
        }
        match boot {
            Boot::Network(firmware) => {
                cmd.args(["-boot", "n"]);
                cmd.args(["-device", &format!("virtio-net-pci,id=nic0,netdev=n0,mac={mac}{}", if *firmware == Firmware::UefiNativePxe { ",romfile=" } else { "" })]);
                if *firmware != Firmware::Bios {
                    cmd.args(["-bios", "/usr/share/ovmf/OVMF.fd"]);
                }
            }
            Boot::Kernel(KernelBoot { kernel, initrd, append }) => {
                cmd.args(["-device", &format!("virtio-net-pci,id=nic0,netdev=n0,mac={mac},romfile=")]);
                cmd.arg("-kernel").arg(kernel).arg("-initrd").arg(initrd).args(["-append", append]);
            }
        }
        if !link_up {
            // Paused until the link is down, so the guest never sees it up.
            cmd.arg("-S");
        }
        let again = spec.reboots.then(|| std::iter::once(cmd.get_program().to_os_string()).chain(cmd.get_args().map(|a| a.to_os_string())).collect());
        let log = dir.join(format!("{name}.qemu.log"));
        let proc = Proc::spawn(&format!("qemu {name}"), &mut cmd, &log)?;
        let qemu = Arc::new(Mutex::new(Qemu { proc, again, plugged: Vec::new(), boot_from: 0, off: false }));
        let rebooter = spec.reboots.then(|| {
            anyhow::ensure!(link_up, "a VM that reboots starts with its link up");
            let stop = Arc::new(AtomicBool::new(false));
            let (q, stopped, name, console, serial, monitor) = (qemu.clone(), stop.clone(), name.to_string(), console.clone(), serial.clone(), monitor.clone());
            let thread = std::thread::Builder::new().name(format!("{name} rebooter")).spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                    let mut q = q.lock().unwrap_or_else(|e| e.into_inner());
                    if q.off || !q.proc.exited() {
                        continue;
                    }
                    if let Err(e) = start_again(&mut q, &name, &console, &serial, &monitor, &log) {
                        // In QEMU's log, which a failed wait shows.
                        use std::io::Write;
                        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(&log) {
                            let _ = writeln!(f, "lab: cannot start QEMU again after the guest's reboot: {e:#}");
                        }
                        q.off = true;
                    }
                }
            })?;
            Ok((stop, thread))
        });
        let rebooter = rebooter.transpose()?;
        let vm = Vm { qemu, rebooter, console, mark: 0, serial, commands: 0, monitor, mac: mac.into(), tap, ns: lan.server.name().into() };
        if !link_up {
            vm.monitor("set_link nic0 off")?;
            vm.monitor("cont")?;
        }
        Ok(vm)
    }

    /// Plugs the VM's cable in (`true`) or pulls it (`false`).
    pub fn set_link(&self, up: bool) -> anyhow::Result<()> {
        self.monitor(if up { "set_link nic0 on" } else { "set_link nic0 off" })
    }

    /// Plugs `image` (raw) into the running VM as a new virtio disk, as a USB disk plugged in
    /// would appear; `id` names it (unique per VM). It stays plugged in across reboots.
    pub fn plug_disk(&self, image: &Path, id: &str) -> anyhow::Result<()> {
        let file = image.display().to_string().replace(',', ",,");
        self.monitor(&format!("drive_add 0 file={file},format=raw,if=none,id=drive-{id}"))?;
        self.monitor(&format!("device_add virtio-blk-pci,drive=drive-{id},id={id}"))?;
        self.qemu.lock().unwrap_or_else(|e| e.into_inner()).plugged.push(image.to_path_buf());
        Ok(())
    }

    /// One command on QEMU's human monitor (waits for the socket to appear).
    fn monitor(&self, command: &str) -> anyhow::Result<()> {
        use std::io::{Read, Write};
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut sock = loop {
            match std::os::unix::net::UnixStream::connect(&self.monitor) {
                Ok(s) => break s,
                Err(e) if std::time::Instant::now() > deadline => anyhow::bail!("QEMU monitor {}: {e}", self.monitor.display()),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        sock.set_read_timeout(Some(Duration::from_secs(5)))?;
        // The banner ends with the prompt; the command's reply with the next one.
        let mut seen = Vec::new();
        let mut buf = [0u8; 512];
        let mut prompts = 0;
        sock.write_all(format!("{command}\n").as_bytes())?;
        while prompts < 2 {
            let n = sock.read(&mut buf)?;
            anyhow::ensure!(n > 0, "QEMU monitor closed after {:?}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
            prompts = String::from_utf8_lossy(&seen).matches("(qemu)").count();
        }
        let reply = String::from_utf8_lossy(&seen);
        anyhow::ensure!(!reply.contains("Error") && !reply.contains("not found"), "QEMU monitor `{command}`: {reply}");
        Ok(())
    }

    /// The first console line (from the start of the console, escapes removed) containing
    /// `needle`; panics naming the VM if there is none (for tests, after a `wait_for`).
    pub fn console_line(&self, needle: &str) -> String {
        let c = String::from_utf8_lossy(&std::fs::read(&self.console).unwrap_or_default()).into_owned();
        c.lines()
            .map(crate::proc::without_escapes)
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} on {}'s console", self.mac))
            .trim_end_matches('\r')
            .to_string()
    }

    /// From now on [`Vm::wait_for`] looks only at what the console prints after this moment.
    pub fn mark(&mut self) {
        self.mark = std::fs::metadata(&self.console).map_or(0, |m| m.len() as usize);
    }

    /// Types `text` on the serial console.
    pub fn send(&self, text: &str) -> anyhow::Result<()> {
        use std::io::Write;
        let mut s = std::os::unix::net::UnixStream::connect(&self.serial).with_context(|| format!("VM {}: serial socket {}", self.mac, self.serial.display()))?;
        // Slowly enough for a getty under TCG.
        for chunk in text.as_bytes().chunks(16) {
            s.write_all(chunk)?;
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Logs in on the serial console's getty (waits for its `login:` prompt).
    pub fn login(&mut self, user: &str, password: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + timeout;
        // The prompt has no newline after it: a newline brings a fresh one, line-ended by the
        // next prompt's.
        loop {
            self.mark();
            self.send("\n")?;
            if self.wait_for_prompt("login:", Duration::from_secs(10)).is_ok() {
                break;
            }
            anyhow::ensure!(std::time::Instant::now() < deadline, "VM {}: no login prompt on the serial console", self.mac);
        }
        self.send(&format!("{user}\n"))?;
        self.wait_for_prompt("Password:", Duration::from_secs(30))?;
        self.mark();
        self.send(&format!("{password}\n"))?;
        // The shell's prompt before anything is typed: a shell setting up its terminal may
        // flush what was typed ahead (a command line cut in half, seen under load).
        self.wait_for_prompt_where("a shell prompt", Duration::from_secs(90), |l| l.trim_end().ends_with('#') || l.trim_end().ends_with('$'))?;
        self.shell("true", Duration::from_secs(60)).map(|_| ())
    }

    /// Waits until the console's unfinished last line (a prompt) contains `prompt`.
    fn wait_for_prompt(&mut self, prompt: &str, timeout: Duration) -> anyhow::Result<()> {
        self.wait_for_prompt_where(prompt, timeout, |l| l.contains(prompt))
    }

    fn wait_for_prompt_where(&mut self, what: &str, timeout: Duration, is_prompt: impl Fn(&str) -> bool) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let bytes = std::fs::read(&self.console).unwrap_or_default();
            let text = String::from_utf8_lossy(bytes.get(self.mark..).unwrap_or_default()).into_owned();
            if text.lines().last().is_some_and(&is_prompt) {
                return Ok(());
            }
            anyhow::ensure!(std::time::Instant::now() < deadline && !self.exited(), "VM {}: no {what:?} prompt", self.mac);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `command` in the shell logged in on the serial console ([`Vm::login`]); returns
    /// what it printed (lines, without the echo of the command) once it is done.
    pub fn shell(&mut self, command: &str, timeout: Duration) -> anyhow::Result<String> {
        self.commands += 1;
        let n = 100_000 + self.commands;
        // The end marker is computed by the shell, so the echo of the typed line never matches.
        let (start, end) = (format!("@@{}@@", n), format!("@@{}@@", n + 500_000));
        self.mark();
        let from = self.mark;
        self.send(&format!("echo @@$(({n}))@@; {command}; echo @@$(({n}+500000))@@\n"))?;
        self.wait_for(&end, timeout)?;
        let bytes = std::fs::read(&self.console).unwrap_or_default();
        let text = String::from_utf8_lossy(bytes.get(from..).unwrap_or_default()).into_owned();
        // Without escapes (bash's bracketed-paste switch precedes a command's output).
        let lines: Vec<String> = text.lines().map(|l| crate::proc::without_escapes(l).replace('\r', "")).collect();
        // The start marker ends its line (a long command line's redraw can leave a stray
        // character before it on the serial console).
        let first = lines.iter().position(|l| l.ends_with(&start)).unwrap_or(0);
        let last = lines.iter().position(|l| *l == end).unwrap_or(lines.len());
        Ok(lines[(first + 1).min(last)..last].join("\n"))
    }

    /// Waits for a console line containing `needle` (after the [`Vm::mark`]); fails at once if
    /// QEMU exits without it.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> anyhow::Result<String> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let exited = self.exited();
            if let Ok(line) = wait_for_line_after(&self.console, self.mark, needle, Duration::ZERO) {
                return Ok(line);
            }
            if exited || std::time::Instant::now() > deadline {
                let console = String::from_utf8_lossy(&std::fs::read(&self.console).unwrap_or_default()).into_owned();
                let tail: Vec<&str> = console.lines().rev().take(25).collect::<Vec<_>>().into_iter().rev().collect();
                anyhow::bail!(
                    "VM {}: no {needle:?} on the console ({}); last console lines:\n{}\nqemu: {}",
                    self.mac,
                    if exited { "QEMU exited" } else { "timed out" },
                    tail.join("\n"),
                    self.qemu.lock().unwrap_or_else(|e| e.into_inner()).proc.output()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether QEMU has exited (the guest powered off).
    /// The VM's tap in the server namespace (its switch port: what it receives leaves there).
    pub fn tap(&self) -> &str {
        &self.tap
    }

    /// Whether the guest is off: QEMU ended and, for a VM that reboots, not for a reboot.
    pub fn exited(&mut self) -> bool {
        let mut q = self.qemu.lock().unwrap_or_else(|e| e.into_inner());
        if q.again.is_some() {
            q.off
        } else {
            q.proc.exited()
        }
    }
}

/// After QEMU ended: if the guest's last boot ended in a reboot (the kernel's last words on the
/// console), QEMU again, as it was started and with the disks plugged in since; else the VM
/// is off.
fn start_again(q: &mut Qemu, name: &str, console: &Path, serial: &Path, monitor: &Path, log: &Path) -> anyhow::Result<()> {
    let text = std::fs::read(console).unwrap_or_default();
    let boot = String::from_utf8_lossy(text.get(q.boot_from as usize..).unwrap_or_default()).into_owned();
    let Some(args) = q.again.clone().filter(|_| boot.contains("reboot: Restarting system")) else {
        q.off = true;
        return Ok(());
    };
    q.boot_from = text.len() as u64;
    for socket in [serial, monitor] {
        let _ = std::fs::remove_file(socket);
    }
    let mut cmd = std::process::Command::new(&args[0]);
    cmd.args(&args[1..]);
    for disk in &q.plugged {
        cmd.arg("-drive").arg(format!("file={},format=raw,if=virtio", disk.display().to_string().replace(',', ",,")));
    }
    q.proc = Proc::spawn(&format!("qemu {name}"), &mut cmd, log)?;
    Ok(())
}

impl Drop for Vm {
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.rebooter.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = thread.join();
        }
        self.qemu.lock().unwrap_or_else(|e| e.into_inner()).proc.kill9();
        let _ = std::process::Command::new("ip").args(["-n", &self.ns, "link", "del", &self.tap]).output();
    }
}

/// How many tests run VMs at once. Under TCG a VM keeps a core busy, so tests with VMs take
/// turns for the cores (`SWARMBOOT_LAB_VM_TESTS`, default: the number of cores) while tests
/// without VMs — many wait on timers and peers — run beside them (`cargo xtask test` runs
/// the suite with a thread more than there are cores).
pub mod vm_tests {
    use std::cell::RefCell;
    use std::sync::{Condvar, Mutex};
    use std::time::Instant;

    static RUNNING: Mutex<usize> = Mutex::new(0);
    static FREED: Condvar = Condvar::new();

    fn limit() -> usize {
        std::env::var("SWARMBOOT_LAB_VM_TESTS").ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
    }

    /// A test's turn (how many of the cores it takes, since when), held by its thread until
    /// the test ends (libtest runs each test on a thread of its own).
    struct Turn {
        cores: usize,
        since: Instant,
        test: String,
    }

    impl Drop for Turn {
        fn drop(&mut self) {
            let mut n = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
            *n -= self.cores;
            FREED.notify_all();
            drop(n);
            timeline(&self.test, &format!("held it {:.0} s", self.since.elapsed().as_secs_f64()));
        }
    }

    /// A line on the real standard output, past libtest's capture (`cargo xtask test` stamps
    /// each with the seconds since the test binary started): when each test's VMs ran, and
    /// how long it waited for the cores, is what says where a suite's time went.
    fn timeline(test: &str, what: &str) {
        use std::io::Write;
        let _ = std::io::stdout().lock().write_all(format!("lab: VM turn of {test}: {what}\n").as_bytes());
    }

    /// Waits until `cores` of the turns are free and takes them for this test.
    fn take(cores: usize) {
        TURN.with(|t| {
            if t.borrow().is_some() {
                return;
            }
            let limit = limit();
            let cores = cores.min(limit);
            let asked = Instant::now();
            let mut n = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
            while *n + cores > limit {
                n = FREED.wait(n).unwrap_or_else(|e| e.into_inner());
            }
            *n += cores;
            drop(n);
            let test = std::thread::current().name().unwrap_or("?").to_string();
            timeline(&test, &format!("took {cores} of {limit} after waiting {:.0} s", asked.elapsed().as_secs_f64()));
            *t.borrow_mut() = Some(Turn { cores, since: Instant::now(), test });
        });
    }

    /// This test's VMs run with no other test's VMs beside them (for a test that measures
    /// where a fleet's bytes came from: TCG machines sharing cores with others' serve slower).
    /// Call it before the test's first VM.
    pub fn alone() {
        take(usize::MAX);
    }

    thread_local! {
        static TURN: RefCell<Option<Turn>> = const { RefCell::new(None) };
    }

    /// Waits for this test's turn at its first VM (later VMs of the same test go at once), or
    /// before other work that keeps a core busy for minutes: an image build is niced, and
    /// beside two other tests' TCG machines it would get a tenth of a core.
    pub fn enter() {
        take(1);
    }
}
