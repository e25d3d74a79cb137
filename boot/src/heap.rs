//! The boot stage's heap: room for the board's device tree, one edited copy per
//! partition and the decoded plan. It lives in `.bss`, inside the boot stage's
//! region, and is dropped whole at hand-off.

#[global_allocator]
static HEAP: boards::heap::BumpHeap<{ 4 << 20 }> = boards::heap::BumpHeap::new();
