//! A sensor whose `check` uses the component model's async ABI (as
//! componentize-js's QuickJS backend produces): the agent refuses it with
//! a message saying so.
#[cfg(target_family = "wasm")]
mod asynchronous {
    wit_bindgen::generate!({
        inline: "
            package outpost:plugin@0.1.1;
            interface sensor {
                check: func(config: string, timeout-ms: u32) -> string;
            }
            world async-sensor { export sensor; }
        ",
        async: true,
    });
    struct Async;
    impl exports::outpost::plugin::sensor::Guest for Async {
        async fn check(_config: String, _timeout_ms: u32) -> String {
            String::new()
        }
    }
    export!(Async);
}

fn main() {}
