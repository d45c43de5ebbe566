//! Misbehaving Weir module: wrong-world.
//!
//! A valid WebAssembly component that does not target the Weir contract: it exports
//! `run: func(input: string) -> string` of its own world `weir-test:other/other` (in `wit/`) and
//! no `weir:stage/enrich`. The host must refuse it at load time and say what it expected. No
//! config.

/// Reverses its input, for lack of anything better to do.
pub fn run(input: &str) -> String {
    input.chars().rev().collect()
}

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "wit", world: "other" });

    struct Other;

    impl Guest for Other {
        fn run(input: String) -> String {
            super::run(&input)
        }
    }

    export!(Other);
}

#[cfg(test)]
mod tests {
    #[test]
    fn reverses() {
        assert_eq!(super::run("weir"), "riew");
    }
}
