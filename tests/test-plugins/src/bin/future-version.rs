//! A component that exports the sensor interface of a future, unsupported
//! version of the Outpost WIT package.
#[cfg(target_family = "wasm")]
mod future {
    wit_bindgen::generate!({
        inline: "
            package outpost:plugin@9.0.0;
            interface sensor {
                check: func(config: string) -> string;
            }
            world future-sensor { export sensor; }
        ",
    });
    struct Future;
    impl exports::outpost::plugin::sensor::Guest for Future {
        fn check(_config: String) -> String {
            String::new()
        }
    }
    export!(Future);
}

fn main() {}
