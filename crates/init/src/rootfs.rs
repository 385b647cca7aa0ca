//! An image's root filesystem as `/`: the squashfs on a loop device, read-only, under a tmpfs
//! overlay, the API filesystems moved in, then (as util-linux's switch_root) MS_MOVE over `/`,
//! chroot, exec the image's init. The stub does it with its own kernel; the init a kexec
//! carried along does it in the image's kernel.

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::mount::{mount, umount, MsFlags};
use nix::unistd::{chdir, chroot, execve};

use crate::console::say;
use crate::drivers::Drivers;
use crate::ltsp_install::Start;

/// Where the new root is put together.
const NEWROOT: &str = "/newroot";
/// The overlay's layers, on the tmpfs at /run (which moves into the new root).
const LAYERS: &str = "/run/swarmboot/root";

/// /proc, /sys, /dev and a tmpfs /run (the image lives there, in RAM: most of it may be used).
pub fn mount_api_filesystems() {
    let m = |src: &str, target: &str, fs: &str, data: Option<&str>| {
        let _ = std::fs::create_dir_all(target);
        if let Err(e) = mount(Some(src), target, Some(fs), MsFlags::MS_NOSUID, data) {
            if e != nix::errno::Errno::EBUSY {
                say(format!("cannot mount {fs} on {target}: {e}"));
            }
        }
    };
    m("proc", "/proc", "proc", None);
    m("sysfs", "/sys", "sysfs", None);
    m("devtmpfs", "/dev", "devtmpfs", None);
    m("tmpfs", "/run", "tmpfs", Some("mode=0755,size=95%"));
}

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_SET_FD: libc::c_ulong = 0x4C00;
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;

/// A free loop device backed by `file`, read-only.
fn attach_loop(file: &Path) -> anyhow::Result<PathBuf> {
    let ctl = std::fs::File::open("/dev/loop-control")?;
    // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number or -1.
    let n = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE as _) };
    anyhow::ensure!(n >= 0, "no free loop device: {}", std::io::Error::last_os_error());
    let dev = PathBuf::from(format!("/dev/loop{n}"));
    for _ in 0..50 {
        if dev.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let lo = std::fs::File::open(&dev)?;
    let backing = std::fs::File::open(file)?;
    // SAFETY: LOOP_SET_FD takes the backing file's descriptor, valid for the call.
    let r = unsafe { libc::ioctl(lo.as_raw_fd(), LOOP_SET_FD as _, backing.as_raw_fd()) };
    anyhow::ensure!(r == 0, "LOOP_SET_FD on {}: {}", dev.display(), std::io::Error::last_os_error());
    Ok(dev)
}

fn detach_loop(dev: &Path) {
    if let Ok(lo) = std::fs::File::open(dev) {
        // SAFETY: LOOP_CLR_FD takes no argument.
        let _ = unsafe { libc::ioctl(lo.as_raw_fd(), LOOP_CLR_FD as _) };
    }
}

fn load_root_modules(drivers: &mut Drivers) {
    for module in ["loop", "fs-squashfs", "fs-overlay"] {
        drivers.load(module);
    }
}

/// Mounts the squashfs `squashfs` read-only at `at`, runs `look` on it, and takes it down
/// again (the stub reads the image's modules for the kernel it kexecs).
pub fn with_squashfs<T>(drivers: &mut Drivers, squashfs: &Path, at: &Path, look: impl FnOnce(&Path) -> T) -> anyhow::Result<T> {
    load_root_modules(drivers);
    std::fs::create_dir_all(at)?;
    let dev = attach_loop(squashfs)?;
    if let Err(e) = mount(Some(&dev), at, Some("squashfs"), MsFlags::MS_RDONLY, None::<&str>) {
        detach_loop(&dev);
        anyhow::bail!("mounting the image's squashfs: {e}");
    }
    let result = look(at);
    let _ = umount(at);
    detach_loop(&dev);
    Ok(result)
}

/// The squashfs `squashfs` under a tmpfs overlay at [`NEWROOT`], /dev /proc /sys /run moved
/// into it. Returns the new root.
pub fn assemble(drivers: &mut Drivers, squashfs: &Path) -> anyhow::Result<PathBuf> {
    load_root_modules(drivers);
    let base = Path::new(LAYERS);
    let (lower, rw, newroot) = (base.join("lower"), base.join("rw"), PathBuf::from(NEWROOT));
    for d in [&lower, &rw, &newroot] {
        std::fs::create_dir_all(d)?;
    }
    let dev = attach_loop(squashfs)?;
    mount(Some(&dev), &lower, Some("squashfs"), MsFlags::MS_RDONLY, None::<&str>).map_err(|e| anyhow::anyhow!("mounting the image's squashfs: {e}"))?;
    mount(Some("tmpfs"), &rw, Some("tmpfs"), MsFlags::empty(), Some("mode=0755")).map_err(|e| anyhow::anyhow!("tmpfs for the overlay: {e}"))?;
    std::fs::create_dir_all(rw.join("upper"))?;
    std::fs::create_dir_all(rw.join("work"))?;
    let opts = format!("lowerdir={},upperdir={},workdir={}", lower.display(), rw.join("upper").display(), rw.join("work").display());
    mount(Some("overlay"), &newroot, Some("overlay"), MsFlags::empty(), Some(opts.as_str())).map_err(|e| anyhow::anyhow!("overlay: {e}"))?;
    for api in ["dev", "proc", "sys", "run"] {
        let target = newroot.join(api);
        std::fs::create_dir_all(&target)?;
        mount(Some(Path::new("/").join(api).as_path()), &target, None::<&str>, MsFlags::MS_MOVE, None::<&str>).map_err(|e| anyhow::anyhow!("moving /{api}: {e}"))?;
    }
    Ok(newroot)
}

/// `newroot` becomes `/` and the image's init runs in it as PID 1, with `start.env` added to
/// its environment; an LTSP image gets its `ltsp.img` installed first, inside the new root.
pub fn switch(newroot: &Path, start: &Start) -> anyhow::Result<std::convert::Infallible> {
    chdir(newroot)?;
    mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)?;
    chroot(".")?;
    chdir("/")?;
    if let Some(ltsp) = &start.ltsp {
        ltsp.install(Path::new("/"))?;
    }
    let path = CString::new(start.init.as_str())?;
    let added: Vec<&str> = start.env.iter().filter_map(|kv| kv.split_once('=').map(|(k, _)| k)).collect();
    let mut env: Vec<CString> = std::env::vars().filter(|(k, _)| !added.contains(&k.as_str())).filter_map(|(k, v)| CString::new(format!("{k}={v}")).ok()).collect();
    env.extend(start.env.iter().filter_map(|kv| CString::new(kv.as_str()).ok()));
    execve(&path, &[&path], &env)?;
    anyhow::bail!("exec {} returned", start.init)
}
