//! The default Linux + RTOS split on QEMU virt: Debian's unmodified arm64
//! kernel in its partition, the Linux-side bridge mapping the link window
//! through /dev/mem, the RTOS's log readable at /dev/avps/<link>/console, its
//! network device as avps0 (ping and a TCP echo of 1 MiB), the RTOS's RAM
//! disk as an NBD device Linux formats and fills, Linux's virtio-mmio disk
//! written by the RTOS, a bridge restart resuming all of them, and Linux's
//! power-off stopping Linux only.

use std::time::Duration;

use boards::Board;
use tests::qemu::Machine;
use tests::Scratch;

/// Formats the RTOS's disk (ext2, busybox's `mke2fs`), writes a 4 MiB file
/// of random bytes, remounts and compares; the kernel's log must hold no
/// ext4 error (busybox has no fsck: the driver's own checks at mount and
/// the read-back stand in for it). What it prints is split in the command
/// (`ident""ical`), so the terminal's echo of the command does not match.
const FILL_DISK: &str = "B=/dev/avps/linux-rtos/block; mke2fs -q $B && mkdir -p /mnt /tmp \
&& mount -t ext2 $B /mnt && dd if=/dev/urandom of=/tmp/f bs=64k count=64 2>/dev/null \
&& cp /tmp/f /mnt/f && umount /mnt && mount -t ext2 -o ro $B /mnt && cmp /tmp/f /mnt/f \
&& umount /mnt && ! dmesg | grep 'EXT4-fs error' \
&& echo \"disk: $(wc -c < /tmp/f) bytes ident\"\"ical after a remount\"\n";

/// After the bridge restart: the same file, through the new bridge's export.
const REREAD_DISK: &str = "until [ -e /dev/avps/linux-rtos/block ]; do sleep 1; done; \
mount -t ext2 -o ro /dev/avps/linux-rtos/block /mnt && cmp /tmp/f /mnt/f && umount /mnt \
&& echo \"disk: the file ident\"\"ical after the bridge restart\"\n";

#[test]
fn linux_reads_the_rtos_console_and_its_poweroff_leaves_the_rtos_running() {
    let scratch = Scratch::new("linux-rtos");
    let (firmware, plan) = tests::pack(
        "manifests/qemu-virt/linux-rtos.toml",
        &scratch,
        tests::Images::Real,
    );
    let board = Board::by_name("qemu-virt").unwrap();
    let mut machine = Machine::new(board, &firmware, None);
    // Linux's own disk (its /dev/vda), which the bridge serves to the RTOS.
    let disk = tests::attach_linux_disk(&mut machine, &scratch);
    let socket = scratch.0.join("monitor.sock");
    machine.monitor = Some(socket.clone());
    let window = plan.links[0].base;
    let read_counter = |offset: u64| -> u64 {
        let at = window + offset;
        let answer =
            tests::qemu::monitor(&socket, &format!("xp /1wx {at:#x}")).expect("monitor answers");
        let value = answer
            .rsplit(": ")
            .next()
            .unwrap_or("")
            .trim()
            .trim_end_matches("(qemu)")
            .trim();
        u64::from_str_radix(value.trim_start_matches("0x"), 16)
            .unwrap_or_else(|_| panic!("cannot read the counter at {at:#x} from `{answer}`"))
    };
    let counters = || {
        (
            read_counter(amp_plan::layout::HEARTBEAT_OFFSET),
            read_counter(amp_plan::layout::ALARMS_OFFSET),
        )
    };
    let (mut before, mut after) = ((0, 0), (0, 0));
    let t = tests::qemu::run_scripted(
        &machine,
        Duration::from_secs(180),
        &[
            ("console of rtos up", "cat /dev/avps/linux-rtos/console &\n"),
            // The network device: ping the RTOS, then 1 MiB through its TCP
            // echo service.
            ("[rtos] cores up: 2", "ping -c 20 -i 0.2 10.77.0.2\n"),
            ("round-trip min/avg/max", "avps-bridge echo\n"),
            // The RTOS's disk: a file system on it, a 4 MiB file written,
            // read back after a remount.
            ("came back identical", FILL_DISK),
            // Restart the bridge: the RTOS sees the new host and starts over.
            (
                "identical after a remount",
                "killall avps-bridge; avps-bridge &\n",
            ),
            (
                "network device of rtos up",
                "cat /dev/avps/linux-rtos/console &\n",
            ),
            (
                "[rtos] alive",
                "ping -c 3 -s 1472 10.77.0.2 && avps-bridge echo 10.77.0.2:7 100000\n",
            ),
            ("came back identical", REREAD_DISK),
            ("identical after the bridge restart", "poweroff -f\n"),
        ],
        |l| {
            if !l.contains("reboot: System halted") {
                return false;
            }
            // Linux has stopped its cores; the RTOS must still be counting
            // its work loops and its RTC alarms (one a second).
            before = counters();
            std::thread::sleep(Duration::from_millis(2500));
            after = counters();
            true
        },
    )
    .expect("QEMU starts");
    assert!(
        t.reached,
        "Linux did not halt, or the RTOS's log did not reach it:\n{t}"
    );
    // Linux sees its two cores and its memory only.
    assert!(
        t.lines
            .iter()
            .any(|l| l.starts_with("linux partition: 2 CPUs,")),
        "{t}"
    );
    // The bridge found the link in Linux's device tree and met the RTOS.
    assert!(
        t.has("avps-bridge: link linux-rtos: console of rtos at /dev/avps/linux-rtos/console"),
        "{t}"
    );
    assert!(
        t.has("avps-bridge: link linux-rtos: console of rtos up"),
        "{t}"
    );
    // What `cat` printed: the RTOS's own view of its partition.
    assert!(
        t.has("[rtos] up at 0x60000000 on core 0x2; cores 0x2 0x3; memory 0x60000000+0x4000000"),
        "{t}"
    );
    // The network device: avps0 in Linux, smoltcp in the RTOS.
    assert!(
        t.has("avps-bridge: link linux-rtos: network device of rtos at avps0 (10.77.0.1/24"),
        "{t}"
    );
    assert!(
        t.has("20 packets transmitted, 20 packets received, 0% packet loss"),
        "{t}"
    );
    assert!(
        t.has("echo 10.77.0.2:7: 1048576 bytes came back identical"),
        "{t}"
    );
    // Killing and restarting the bridge resumed the network device too;
    // full-size frames (1472 bytes of ICMP payload: 1514 on the wire, four
    // messages each) go through.
    assert!(t.has("1480 bytes from 10.77.0.2: seq=2"), "{t}");
    assert!(
        t.has("3 packets transmitted, 3 packets received, 0% packet loss"),
        "{t}"
    );
    assert!(
        t.has("echo 10.77.0.2:7: 100000 bytes came back identical"),
        "{t}"
    );
    // Killing and restarting the bridge resumed the console without a reboot:
    // the new bridge met the RTOS again and its lines came through.
    let announced = t
        .lines
        .iter()
        .filter(|l| l.contains("console of rtos up"))
        .count();
    assert!(
        announced >= 2,
        "the restarted bridge must meet the RTOS again:\n{t}"
    );
    assert!(t.has("avps-bridge: stopping"), "{t}");
    // The RTOS's RAM disk, formatted, filled and read back through NBD,
    // before and after the bridge restart.
    assert!(
        t.has("avps-bridge: link linux-rtos: disk of rtos at /dev/avps/linux-rtos/block (/dev/nbd"),
        "{t}"
    );
    assert!(
        t.has("disk: 4194304 bytes identical after a remount"),
        "{t}"
    );
    assert!(
        t.has("disk: the file identical after the bridge restart"),
        "{t}"
    );
    // Linux's disk, written by the RTOS through the bridge (virtio-drivers'
    // VirtIOBlk in the RTOS, our device over /dev/vda in the bridge), once
    // per bridge; the pattern is on the disk image afterwards.
    let checks = t
        .lines
        .iter()
        .filter(|l| {
            l.contains("[rtos] disk from linux (virtio-blk): 128 of 32768 sectors written, flushed, read back identical")
        })
        .count();
    assert!(checks >= 2, "one disk check per bridge:\n{t}");
    let image = std::fs::read(&disk).expect("the disk image");
    for s in 0..128usize {
        for i in 0..512usize {
            let want = (s.wrapping_mul(7).wrapping_add(i) as u8) ^ 0x5a;
            assert_eq!(
                image[s * 512 + i],
                want,
                "byte {i} of sector {s} on Linux's disk"
            );
        }
    }
    assert!(
        image[128 * 512..].iter().all(|b| *b == 0),
        "nothing written past the pattern"
    );
    // Entropy from Linux: the bridge serves a virtio-rng device over
    // virtio-msg, and the RTOS drives it with virtio-drivers' own driver
    // each time the link comes up, so once per bridge.
    assert!(
        t.has("avps-bridge: link linux-rtos: entropy device for rtos (virtio-rng over virtio-msg, from getrandom)"),
        "{t}"
    );
    let draws: Vec<Vec<u8>> = t
        .lines
        .iter()
        .filter_map(|l| l.split("[rtos] entropy from linux (virtio-rng): ").nth(1))
        .map(|hex| {
            let hex = hex.trim();
            (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("a hex byte"))
                .collect()
        })
        .collect();
    assert!(
        draws.len() >= 2,
        "one draw per bridge, before and after its restart:\n{t}"
    );
    for d in &draws {
        assert_eq!(d.len(), 32, "{t}");
        assert!(d.iter().any(|b| *b != 0), "entropy, not zeroes:\n{t}");
    }
    assert_ne!(draws[0], draws[1], "two draws from getrandom differ:\n{t}");
    let second = t
        .lines
        .iter()
        .rposition(|l| l.contains("console of rtos up"))
        .unwrap();
    assert!(
        t.lines[second..].iter().any(|l| l.contains("[rtos] alive")),
        "{t}"
    );
    // Linux's power-off (PSCI 0.1 in its tree: no SYSTEM_OFF) halted only its
    // own cores: the machine ran on and the RTOS kept working.
    assert!(!t.exited_cleanly, "QEMU must not have powered off:\n{t}");
    assert!(
        after.0 > before.0,
        "the RTOS's heartbeat stopped after Linux halted: {before:?} {after:?}\n{t}"
    );
    assert!(
        after.1 > before.1,
        "the RTOS's RTC alarms stopped after Linux halted: {before:?} {after:?}\n{t}"
    );
    // The RTC alarm fired before Linux's boot reset the GIC distributor, the
    // RTOS saw the reset and put its interrupt back, and alarms went on with
    // none missed, as did the SGI doorbell from the RTOS's other core.
    let position = |needle: &str| t.lines.iter().position(|l| l.contains(needle));
    let first_alarm = position("[rtos] rtc alarm 1: ").unwrap_or_else(|| panic!("no alarm\n{t}"));
    let reset = position(
        "[rtos] gic: another OS reset interrupt 34 (enabled false, routed to core 0x0); restored",
    )
    .unwrap_or_else(|| panic!("the RTOS did not see Linux reset its interrupt\n{t}"));
    assert!(first_alarm < reset, "{t}");
    // Typed commands echo into the console between the RTOS's lines, so a
    // line may start with a stray character: look for the marker anywhere.
    const ALARM: &str = "[rtos] rtc alarm ";
    let alarm_text = |l: &str| l.find(ALARM).map(|i| l[i + ALARM.len()..].to_string());
    let alarms: Vec<(u64, u64, u64)> = t
        .lines
        .iter()
        .filter_map(|l| {
            let rest = alarm_text(l)?;
            let rest = rest.as_str();
            let (n, rest) = rest.split_once(": ")?;
            let (missed, rest) = rest.split_once(" periods missed, ")?;
            let doorbells = rest.strip_suffix(" doorbells")?;
            Some((
                n.parse().ok()?,
                missed.parse().ok()?,
                doorbells.parse().ok()?,
            ))
        })
        .collect();
    assert!(alarms.len() >= 8, "{alarms:?}\n{t}");
    assert!(
        alarms
            .windows(2)
            .all(|w| w[1].0 > w[0].0 && w[1].2 > w[0].2),
        "alarms or doorbells stalled: {alarms:?}"
    );
    // Periods missed are reported, not asserted in general (a loaded host
    // can hold a virtual CPU back for a second), but Linux's reset must not
    // have cost one: the alarms on either side of it count the same.
    let missed_at = |line: usize| {
        t.lines[..line]
            .iter()
            .rev()
            .find_map(|l| alarm_text(l))
            .and_then(|l| l.split_once(": ")?.1.split_once(' ')?.0.parse::<u64>().ok())
    };
    let after_reset = reset
        + 1
        + t.lines[reset + 1..]
            .iter()
            .position(|l| l.contains(ALARM))
            .unwrap_or_else(|| panic!("no alarm after the reset\n{t}"));
    assert_eq!(
        missed_at(reset),
        missed_at(after_reset + 1),
        "Linux's reset of the GIC cost an alarm: {alarms:?}"
    );
}
