//! `swarmboot dataset add|list|show|rm` on a state directory: a directory's files under their
//! paths, a successor sharing its predecessor's files in the store, links refused, and `image
//! gc` keeping what a dataset names.

use std::path::Path;
use std::process::{Command, Output};

fn swarmboot(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_swarmboot")).args(args).arg("--config").arg(config).output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn datasets_are_added_shown_succeeded_and_removed_from_the_command_line() {
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("state");
    let config = d.path().join("swarmboot.toml");
    std::fs::write(&config, format!("[server]\nstate_dir = \"{}\"\n", state.display())).unwrap();
    let books = d.path().join("books");
    std::fs::create_dir_all(books.join("Dickens")).unwrap();
    std::fs::write(books.join("Dickens/Great Expectations.pdf"), "GE").unwrap();
    std::fs::write(books.join("Dickens/Bleak House.pdf"), "BH").unwrap();
    let extra = d.path().join("Hard Times.pdf");
    std::fs::write(&extra, "HT").unwrap();

    let said = ok(swarmboot(&config, &["dataset", "add", "books-9", books.to_str().unwrap(), "--replicas", "3"]));
    assert!(said.starts_with("added dataset books-9 (2 files, 4 B, 3 replicas)"), "{said}");
    let said = ok(swarmboot(&config, &["dataset", "add", "books-10", books.to_str().unwrap(), extra.to_str().unwrap(), "--successor-of", "books-9"]));
    assert!(said.contains("(3 files, 6 B, 2 replicas), successor of books-9"), "{said}");
    let list = ok(swarmboot(&config, &["dataset", "list"]));
    assert!(list.lines().any(|l| l.starts_with("books-10") && l.ends_with("books-9")), "{list}");
    assert!(list.contains("2 dataset(s)"));
    let show = ok(swarmboot(&config, &["dataset", "show", "books-10"]));
    assert!(show.lines().any(|l| l.ends_with("=Dickens/Great Expectations.pdf")) && show.lines().any(|l| l.ends_with("=Hard Times.pdf")), "{show}");
    let json: serde_json::Value = serde_json::from_str(&ok(swarmboot(&config, &["dataset", "list", "--json"]))).unwrap();
    assert_eq!(json[0]["files"], 3);

    // Refused, with what to do: the same name again, a link inside the tree.
    let again = swarmboot(&config, &["dataset", "add", "books-9", extra.to_str().unwrap()]);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("--successor-of books-9"), "{}", String::from_utf8_lossy(&again.stderr));
    std::os::unix::fs::symlink("/etc/passwd", books.join("passwd")).unwrap();
    let link = swarmboot(&config, &["dataset", "add", "with-link", books.to_str().unwrap()]);
    assert!(!link.status.success() && String::from_utf8_lossy(&link.stderr).contains("a link?"), "{}", String::from_utf8_lossy(&link.stderr));

    // gc keeps the datasets' files; once both are removed, they go.
    let gc = ok(swarmboot(&config, &["image", "gc"]));
    assert!(gc.contains("removed 0 file(s)"), "{gc}");
    ok(swarmboot(&config, &["dataset", "rm", "books-9"]));
    ok(swarmboot(&config, &["dataset", "rm", "books-10"]));
    let gc = ok(swarmboot(&config, &["image", "gc"]));
    assert!(gc.contains("removed 3 file(s)"), "{gc}");
}
