//! Pictures of a partitioning: the resolved plan as text, a terminal view
//! (cores, memory map to scale, device ownership) and the same as SVG.

use std::fmt::Write;

use partitioner::plan::Plan;

use crate::Loaded;

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 => format!("{} KiB", b.div_ceil(1024)),
        b => format!("{b} B"),
    }
}

/// The resolved layout, as `amp plan` prints it.
pub(crate) fn plan_text(plan: &Plan, boot: Option<(u64, u64)>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "board {}", plan.board);
    if let Some((b, s)) = boot {
        let _ = writeln!(
            out,
            "  boot stage region {:#012x}..{:#012x} ({})",
            b,
            b + s,
            size(s)
        );
    }
    for p in &plan.partitions {
        let cores: Vec<String> = p
            .cores
            .iter()
            .map(|(i, m)| format!("{i} (mpidr {m:#x})"))
            .collect();
        let _ = writeln!(out, "partition {}", p.name);
        let _ = writeln!(out, "  cores      {} (boot core first)", cores.join(", "));
        for &(b, s) in &p.memory {
            let _ = writeln!(
                out,
                "  memory     {:#012x}..{:#012x} ({})",
                b,
                b + s,
                size(s)
            );
        }
        let _ = writeln!(out, "  entry      EL{}", p.entry_el);
        if let Some(i) = &p.image {
            let _ = writeln!(
                out,
                "  image      {} `{}` at {:#x}, entry {:#x}, {}",
                i.kind.as_str(),
                i.path,
                i.load,
                i.entry,
                size(i.size)
            );
            if let Some((path, at, len)) = &i.initrd {
                let _ = writeln!(out, "  initrd     `{path}` at {at:#x}, {}", size(*len));
            }
            if !i.bootargs.is_empty() {
                let _ = writeln!(out, "  bootargs   {}", i.bootargs);
            }
        }
        let _ = writeln!(out, "  device tree at {:#x}", p.dtb);
        if let Some(c) = &p.console {
            let _ = writeln!(out, "  console    {c}");
        }
        for d in &p.devices {
            let _ = writeln!(out, "  device     {d}");
        }
    }
    for l in &plan.links {
        let host = &plan.partitions[l.host as usize].name;
        let remote = &plan.partitions[l.remote as usize].name;
        let _ = writeln!(out, "link {} ({host} hosts, {remote} remote)", l.name);
        let _ = writeln!(
            out,
            "  window     {:#012x}..{:#012x} ({})",
            l.base,
            l.base + l.size,
            size(l.size)
        );
        let _ = writeln!(
            out,
            "  vrings     {:#x}, {:#x}: {} entries, align {:#x}; buffers at {:#x}",
            l.vring0, l.vring1, l.ring_entries, l.vring_align, l.buffers
        );
        let sgi = l.sgi.map_or(String::new(), |s| format!(" (SGI {s})"));
        let _ = writeln!(
            out,
            "  doorbell   {}{sgi}; notify ids {}, {}",
            l.doorbell.as_str(),
            l.notify_ids[0],
            l.notify_ids[1]
        );
        for d in &l.devices {
            let _ = write!(
                out,
                "  avps       {} (virtio id {}) provided by {}",
                d.kind, d.virtio_id, plan.partitions[d.provider as usize].name
            );
            if !d.backing.is_empty() {
                let _ = write!(out, ", backed by {}", d.backing);
            }
            if d.disk_size != 0 {
                let _ = write!(out, ", {} bytes", d.disk_size);
            }
            let _ = writeln!(out);
        }
    }
    out
}

/// Everything drawn in the memory map, sorted by address: `(base, size, label, owner)`
/// where owner is a partition index, or `None` for the boot stage and windows.
fn regions(loaded: &Loaded, plan: &Plan) -> Vec<(u64, u64, String, Option<usize>)> {
    let mut r = Vec::new();
    for (i, p) in plan.partitions.iter().enumerate() {
        for &(b, s) in &p.memory {
            r.push((b, s, p.name.clone(), Some(i)));
        }
    }
    for l in &plan.links {
        r.push((l.base, l.size, format!("link {}", l.name), None));
    }
    if let Some((b, s)) = loaded.boot_region {
        r.push((b, s, "boot stage".into(), None));
    }
    r.sort();
    r
}

/// The terminal picture.
pub(crate) fn terminal(loaded: &Loaded, plan: &Plan) -> String {
    let mut out = String::new();
    let cores = loaded.resolved.cpus.len();
    let _ = writeln!(
        out,
        "{} on {}: {} cores",
        loaded.path.display(),
        plan.board,
        cores
    );
    // Cores row.
    let mut owner = vec![".".to_string(); cores];
    for p in &plan.partitions {
        for &(i, _) in &p.cores {
            if let Some(o) = owner.get_mut(i as usize) {
                *o = p.name.clone();
            }
        }
    }
    let _ = writeln!(out, "\ncores");
    for (i, o) in owner.iter().enumerate() {
        let _ = writeln!(out, "  {i:>3}  {o}");
    }
    // Memory map to scale: one bar per DRAM range, 64 columns wide.
    let _ = writeln!(out, "\nmemory (each column is 1/64 of the DRAM range)");
    let regions = regions(loaded, plan);
    let letters: Vec<char> = plan
        .partitions
        .iter()
        .enumerate()
        .map(|(i, _)| (b'A' + (i % 26) as u8) as char)
        .collect();
    for &(base, len) in &rules_dram(loaded) {
        let mut bar = vec!['.'; 64];
        for (b, s, _, who) in &regions {
            let (start, end) = ((*b).max(base), (b + s).min(base + len));
            if start >= end {
                continue;
            }
            let from = ((start - base) as u128 * 64 / len as u128) as usize;
            let to =
                (((end - base) as u128 * 64).div_ceil(len as u128) as usize).clamp(from + 1, 64);
            let mark = who.map_or('#', |i| letters[i]);
            for c in &mut bar[from..to] {
                *c = mark;
            }
        }
        let _ = writeln!(
            out,
            "  {:#012x} |{}| {:#012x}",
            base,
            bar.iter().collect::<String>(),
            base + len
        );
    }
    for (i, p) in plan.partitions.iter().enumerate() {
        let _ = writeln!(out, "  {} = {}", letters[i], p.name);
    }
    let _ = writeln!(out, "  # = link window or boot stage");
    let _ = writeln!(out);
    let _ = writeln!(out, "  {:<14} {:<14} {:>10}  what", "from", "to", "size");
    for (b, s, label, _) in &regions {
        let _ = writeln!(
            out,
            "  {:#014x} {:#014x} {:>10}  {label}",
            b,
            b + s,
            size(*s)
        );
    }
    // Devices.
    let _ = writeln!(out, "\ndevices");
    for p in &plan.partitions {
        for d in &p.devices {
            let console = if p.console.as_deref() == Some(d.as_str()) {
                " (console)"
            } else {
                ""
            };
            let _ = writeln!(out, "  {:<40} {}{console}", d, p.name);
        }
    }
    out
}

fn rules_dram(loaded: &Loaded) -> Vec<(u64, u64)> {
    loaded.resolved.dram.clone()
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The SVG picture: a core row, the memory map to scale, and a device table.
pub(crate) fn svg(loaded: &Loaded, plan: &Plan) -> String {
    const PALETTE: [&str; 8] = [
        "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f",
    ];
    let colour = |i: usize| PALETTE[i % PALETTE.len()];
    // Partitions in their colour, link windows grey, the boot stage dark.
    let fill = |label: &str, who: Option<usize>| match who {
        Some(i) => colour(i),
        None if label.starts_with("link") => "#999999",
        None => "#333333",
    };
    let width = 900;
    let mut body = String::new();
    let mut y = 30;
    let _ = writeln!(
        body,
        r#"<text x="20" y="{y}" font-size="18" font-weight="bold">{} on {}</text>"#,
        xml(&loaded.path.display().to_string()),
        xml(&plan.board)
    );
    y += 30;
    let _ = writeln!(body, r#"<text x="20" y="{y}" font-size="14">cores</text>"#);
    let cores = loaded.resolved.cpus.len().max(1);
    let cell = ((width - 140) / cores).min(80);
    for i in 0..cores {
        let owner = plan
            .partitions
            .iter()
            .position(|p| p.cores.iter().any(|&(c, _)| c as usize == i));
        let fill = owner.map_or("#dddddd", colour);
        let x = 120 + i * cell;
        let _ = writeln!(
            body,
            r##"<rect x="{x}" y="{}" width="{}" height="30" fill="{fill}" stroke="#333"/><text x="{}" y="{}" font-size="12" text-anchor="middle">{i}</text>"##,
            y - 20,
            cell - 4,
            x + (cell - 4) / 2,
            y
        );
    }
    y += 40;
    let regions = regions(loaded, plan);
    for &(base, len) in &rules_dram(loaded) {
        let _ = writeln!(
            body,
            r#"<text x="20" y="{}" font-size="14">memory</text>"#,
            y + 20
        );
        let (x0, w) = (120.0, (width - 140) as f64);
        let _ = writeln!(
            body,
            r##"<rect x="{x0}" y="{y}" width="{w}" height="30" fill="#f4f4f4" stroke="#333"/>"##
        );
        for (b, s, label, who) in &regions {
            let (start, end) = ((*b).max(base), (b + s).min(base + len));
            if start >= end {
                continue;
            }
            let x = x0 + (start - base) as f64 / len as f64 * w;
            let rw = ((end - start) as f64 / len as f64 * w).max(2.0);
            let fill = fill(label, *who);
            let _ = writeln!(
                body,
                r#"<rect x="{x:.1}" y="{y}" width="{rw:.1}" height="30" fill="{fill}"><title>{} {:#x}..{:#x} ({})</title></rect>"#,
                xml(label),
                b,
                b + s,
                size(*s)
            );
        }
        let _ = writeln!(
            body,
            r#"<text x="{x0}" y="{}" font-size="11">{base:#x}</text><text x="{}" y="{}" font-size="11" text-anchor="end">{:#x}</text>"#,
            y + 45,
            x0 + w,
            y + 45,
            base + len
        );
        y += 70;
    }
    for (b, s, label, who) in &regions {
        let fill = fill(label, *who);
        let _ = writeln!(
            body,
            r#"<rect x="120" y="{}" width="14" height="14" fill="{fill}"/><text x="142" y="{}" font-size="12">{} {:#x}..{:#x} ({})</text>"#,
            y - 11,
            y,
            xml(label),
            b,
            b + s,
            size(*s)
        );
        y += 20;
    }
    y += 20;
    let _ = writeln!(
        body,
        r#"<text x="20" y="{y}" font-size="14">devices</text>"#
    );
    for (i, p) in plan.partitions.iter().enumerate() {
        for d in &p.devices {
            let _ = writeln!(
                body,
                r#"<rect x="120" y="{}" width="14" height="14" fill="{}"/><text x="142" y="{y}" font-size="12">{} ({})</text>"#,
                y - 11,
                colour(i),
                xml(d),
                xml(&p.name)
            );
            y += 20;
        }
    }
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{}\" font-family=\"sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{body}</svg>\n",
        y + 20
    )
}
