//! Every shader parses and validates with naga, and its header comment lists exactly its
//! bindings and names a CPU function that exists. No GPU needed.

use deepnode_gating::shaders;

fn header(source: &str) -> String {
    source
        .lines()
        .take_while(|l| l.starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_shader_validates_with_naga() {
    for (name, source) in shaders::ALL {
        let module = naga::front::wgsl::parse_str(source)
            .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::default(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(module.entry_points.len(), 1, "{name}: one entry point");
        assert_eq!(module.entry_points[0].name, "main", "{name}");
        // The staged logits kernel has 256 invocations per workgroup for 32 peers (gpu.rs
        // STAGED_PEERS); every other kernel 64 along x (gpu.rs WG).
        let size = if *name == "gating_logits_staged.wgsl" {
            256
        } else {
            64
        };
        assert_eq!(
            module.entry_points[0].workgroup_size,
            [size, 1, 1],
            "{name}: the host assumes {size}"
        );
    }
}

#[test]
fn every_shader_header_lists_its_bindings_and_mirror() {
    let reference = include_str!("../src/reference.rs");
    for (name, source) in shaders::ALL {
        let head = header(source);
        let module = naga::front::wgsl::parse_str(source).expect("parses (see the other test)");
        let mut seen = 0;
        for (_, var) in module.global_variables.iter() {
            let Some(binding) = &var.binding else {
                continue;
            };
            let var_name = var.name.as_deref().unwrap_or("");
            let line = format!("binding {}: {}", binding.binding, var_name);
            assert!(head.contains(&line), "{name}: header lacks `{line}`");
            assert_eq!(binding.group, 0, "{name}: {var_name}");
            seen += 1;
        }
        assert_eq!(
            head.matches("binding ").count(),
            seen,
            "{name}: header lists a binding the module lacks"
        );
        let mirror = head
            .split("Mirrors: ")
            .nth(1)
            .unwrap_or_else(|| panic!("{name}: no `Mirrors:` line"));
        let function = mirror
            .trim_start_matches("the ")
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .find(|w| w.starts_with("reference::"))
            .unwrap_or_else(|| panic!("{name}: `Mirrors:` names no reference:: function"));
        let fn_name = function.trim_start_matches("reference::");
        assert!(
            reference.contains(&format!("pub fn {fn_name}(")),
            "{name}: reference::{fn_name} does not exist"
        );
    }
}
