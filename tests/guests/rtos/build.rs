//! Links the demo RTOS as a position-independent ELF the boot stage places at
//! its partition's first memory range (see `link.ld`).

include!("../../../boards/link_pie.rs");

fn main() {
    link_position_independent();
}
