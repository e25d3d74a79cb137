//! Device-tree cell arithmetic shared by the borrowing reader ([`crate::dt`]) and
//! the planner's owned tree: big-endian cells and `ranges` translation.

/// Reads `cells` big-endian 32-bit cells from the start of `bytes` as one
/// number. Values wider than 64 bits (a non-zero upper cell) read as `None`.
pub fn read_cells(bytes: &[u8], cells: usize) -> Option<u64> {
    let bytes = bytes.get(..cells.checked_mul(4)?)?;
    let mut value: u64 = 0;
    for cell in bytes.chunks_exact(4) {
        if value >> 32 != 0 {
            return None;
        }
        value = (value << 32) | u64::from(u32::from_be_bytes([cell[0], cell[1], cell[2], cell[3]]));
    }
    (cells > 0).then_some(value)
}

/// `#address-cells` / `#size-cells` value from a property, clamped to 4 so that
/// slicing stays bounded whatever the tree says.
pub fn cell_count(value: Option<&[u8]>, default: usize) -> usize {
    value
        .and_then(|v| read_cells(v, 1))
        .map_or(default, |v| v.min(4) as usize)
}

/// Translates `addr` from a bus's child address space to its parent's through
/// the bus's `ranges` value. An empty `ranges` is the identity.
pub fn translate(
    addr: u64,
    ranges: &[u8],
    child_ac: usize,
    parent_ac: usize,
    sc: usize,
) -> Option<u64> {
    if ranges.is_empty() {
        return Some(addr);
    }
    let entry = (child_ac + parent_ac + sc) * 4;
    if entry == 0 {
        return None;
    }
    ranges.chunks_exact(entry).find_map(|r| {
        let child = read_cells(&r[..child_ac * 4], child_ac)?;
        let parent = read_cells(&r[child_ac * 4..(child_ac + parent_ac) * 4], parent_ac)?;
        let size = read_cells(&r[(child_ac + parent_ac) * 4..], sc)?;
        let offset = addr.checked_sub(child)?;
        (offset < size)
            .then(|| parent.checked_add(offset))
            .flatten()
    })
}

/// Splits a `reg` value into `(address, size)` entries of the given widths.
/// Entries whose values do not fit 64 bits read as `None`.
pub fn reg_entries(
    reg: &[u8],
    ac: usize,
    sc: usize,
) -> impl Iterator<Item = Option<(u64, u64)>> + '_ {
    let entry = (ac + sc) * 4;
    reg.chunks_exact(entry.max(1))
        .take(if entry == 0 { 0 } else { usize::MAX })
        .map(move |e| {
            let addr = read_cells(&e[..ac * 4], ac)?;
            // #size-cells = 0 (CPU nodes, some buses): no size.
            let size = if sc == 0 {
                Some(0)
            } else {
                read_cells(&e[ac * 4..], sc)
            }?;
            Some((addr, size))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_big_endian_and_bounded() {
        assert_eq!(
            read_cells(&[0, 0, 0, 1, 0, 0, 0, 2], 2),
            Some((1 << 32) | 2)
        );
        assert_eq!(read_cells(&[0, 0, 0, 1], 1), Some(1));
        assert_eq!(read_cells(&[0, 0, 1], 1), None);
        assert_eq!(read_cells(&[0, 0, 0, 1], 0), None);
        // A 3-cell value whose top cell is set does not fit in 64 bits.
        assert_eq!(read_cells(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0], 3), None);
    }

    #[test]
    fn ranges_translate_like_the_raspberry_pi_soc_bus() {
        // bcm2711: <0x7e000000  0x0 0xfe000000  0x1800000>, child 1 cell, parent 2.
        let ranges = [0x7e, 0, 0, 0, 0, 0, 0, 0, 0xfe, 0, 0, 0, 0x01, 0x80, 0, 0];
        assert_eq!(translate(0x7e21_5040, &ranges, 1, 2, 1), Some(0xfe21_5040));
        assert_eq!(translate(0x7c00_0000, &ranges, 1, 2, 1), None);
        assert_eq!(translate(5, &[], 1, 2, 1), Some(5));
        assert_eq!(translate(5, &[1, 2, 3], 0, 0, 0), None);
    }

    #[test]
    fn reg_entries_split_by_cell_widths() {
        let reg = [0, 0, 0, 0, 0x40, 0, 0, 0, 0x20, 0, 0, 0];
        let v: Vec<_> = reg_entries(&reg, 2, 1).collect();
        assert_eq!(v, vec![Some((0x4000_0000, 0x2000_0000))]);
        assert_eq!(reg_entries(&reg, 0, 0).count(), 0);
    }
}
