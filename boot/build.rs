//! Links the bare-metal boot stage with its own script, as a position-independent
//! image that relocates itself (see `src/start.s`).

include!("../boards/link_pie.rs");

fn main() {
    link_position_independent();
}
