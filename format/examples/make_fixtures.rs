//! Writes the frozen fixtures in `format/testdata/`. Run once per new fixture; never rewrite an
//! existing one (the compat test reads them in every later version).

#[path = "../tests/format/common/mod.rs"]
#[allow(dead_code)]
mod common;

fn main() -> std::io::Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/v1");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("small.qry");
    if path.exists() {
        eprintln!("{} exists; fixtures are frozen", path.display());
        return Ok(());
    }
    std::fs::write(&path, common::small_file())?;
    println!("wrote {}", path.display());
    Ok(())
}
