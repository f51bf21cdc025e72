//! Every shader variant assembles and passes naga validation with no optional capabilities
//! (as in a browser without shader-f16). Needs no GPU.

use srgpt::gpu::shader::{ShaderSpec, SHADER_FILES};
use srgpt::kernels::all_variants;

#[test]
fn every_shader_variant_validates_with_naga() {
    let variants = all_variants();
    assert!(variants.len() > 100, "expected the full variant list, got {}", variants.len());
    let failures: Vec<String> = variants.iter().filter_map(|v| v.validate().err()).map(|e| format!("{e:#}")).collect();
    assert!(failures.is_empty(), "{} of {} variants fail:\n{}", failures.len(), variants.len(), failures.join("\n\n"));
}

#[test]
fn every_kernel_file_is_covered_by_a_variant() {
    let variants = all_variants();
    for (path, _) in SHADER_FILES.iter().filter(|(p, _)| !p.starts_with("lib/")) {
        assert!(variants.iter().any(|v| v.file == *path), "no variant of {path}");
    }
}

#[test]
fn shader_files_match_the_shaders_folder() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut on_disk = Vec::new();
    for sub in ["", "lib/"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".wgsl") {
                on_disk.push(format!("{sub}{name}"));
            }
        }
    }
    on_disk.sort();
    let mut embedded: Vec<String> = SHADER_FILES.iter().map(|(p, _)| p.to_string()).collect();
    embedded.sort();
    assert_eq!(on_disk, embedded, "src/gpu/shader.rs SHADER_FILES must list every file under shaders/");
}

#[test]
fn helpers_are_included_once_and_defines_select_code() {
    let spec = ShaderSpec::new("convert.wgsl", "convert").define("SRC", "bf16").define("DST", "bf16_sr").flag("PAIR_DST", true);
    let src = spec.source().unwrap();
    assert_eq!(src.matches("fn pcg3d").count(), 1);
    assert!(src.contains("bf16_bits_sr(value.x"));
    assert!(!src.contains("#if"));
    let missing = ShaderSpec::new("convert.wgsl", "convert").define("SRC", "f32");
    assert!(missing.source().unwrap_err().to_string().contains("DST"));
}
