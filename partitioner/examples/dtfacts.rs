//! scratch
fn main() {
    let blob = std::fs::read(std::env::args().nth(1).unwrap()).unwrap();
    let t = partitioner::dt::DeviceTree::new(&blob).unwrap();
    println!("compat {:?}", t.compatibles().collect::<Vec<_>>());
    println!("cpus {:?}", t.cpus().collect::<Vec<_>>());
    println!("mem {:?}", t.memory().collect::<Vec<_>>());
    let s = t.stdout();
    println!("stdout {:?}", s.as_ref().map(|s| (s.path_segments().map(|n| n.to_string()).collect::<Vec<_>>(), s.compatible(), s.reg())));
    let s = t.interrupt_controller();
    println!("intc {:?}", s.as_ref().map(|s| (s.path_segments().map(|n| n.to_string()).collect::<Vec<_>>(), s.compatible(), s.reg())));
    println!("psci {:?}", t.psci_method());
}
