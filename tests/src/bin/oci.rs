//! `make oci` and `make pin`:
//! - `oci build <out> <tag> <filter>...`: an OCI image layout per filter
//!   under `<out>/<filter>/`, both Wasm image variants (`<tag>` compat,
//!   `<tag>-oci` artifact), from the modules in `$WASM_DIR`; prints each
//!   image's digest and the module's sha256;
//! - `oci pin <dir>`: rewrites the `sha256` of every WasmPlugin under `<dir>`
//!   to the digest of the compat image of its module.

use e2e::manifests::yaml_files;
use e2e::oci::{sha256_hex, write_layout, Image, Variant};
use e2e::pin::{expected_pin, rewrite};
use e2e::{wasm_module, KitError};
use std::path::Path;
use std::process::ExitCode;

fn build(out: &Path, tag: &str, filters: &[String]) -> Result<(), KitError> {
    println!("{:<18} {:<7} {:<12} {:<71} module sha256", "image", "variant", "tag", "manifest digest");
    for filter in filters {
        let module = std::fs::read(wasm_module(&filter.replace('-', "_"))?).map_err(KitError::io("reading a module"))?;
        let mut images = Vec::new();
        for variant in Variant::ALL {
            let image = Image::of_module(&module, variant, filter)?;
            println!("{filter:<18} {:<7} {:<12} {} {}", variant.name(), variant.tag(tag), image.digest(), sha256_hex(&module));
            images.push((variant.tag(tag), image));
        }
        write_layout(&out.join(filter), &images)?;
    }
    println!("image layouts in {}/<image>/ (skopeo: oci:{}/<image>:<tag>)", out.display(), out.display());
    Ok(())
}

fn pin(dir: &Path) -> Result<(), KitError> {
    for file in yaml_files(dir) {
        let text = std::fs::read_to_string(&file).map_err(KitError::io("reading a manifest"))?;
        let (new, pins) = rewrite(&file, &text, &|filter| expected_pin(filter))?;
        for p in &pins {
            let state = if p.found.as_deref() == Some(p.want.as_str()) { "unchanged" } else { "updated" };
            println!("{}: {} sha256 {} ({state})", p.file.display(), p.filter, p.want);
        }
        if new != text {
            std::fs::write(&file, new).map_err(KitError::io("writing a manifest"))?;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.split_first() {
        Some((cmd, [out, tag, filters @ ..])) if cmd == "build" && !filters.is_empty() => build(Path::new(out), tag, filters),
        Some((cmd, [dir])) if cmd == "pin" => pin(Path::new(dir)),
        _ => Err(KitError::Missing("usage: oci build <out> <tag> <filter>... | oci pin <manifest dir>".into())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oci: {e}");
            ExitCode::FAILURE
        }
    }
}
