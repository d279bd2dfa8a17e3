//! A plain WASI command: a valid component, but not an Outpost plugin.
fn main() {
    println!("I am a command, not a sensor");
}
