//! Finding 11 of the reliability issue: an index file holds `session:<id>`, a bearer token,
//! so everything the store writes is private whatever the umask, and a directory that
//! others can read is refused. `tempfile` directories are the tests' parents only: the
//! stores live in subfolders made here, with the modes each test needs.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use session_core::testkit::SeedExt as _;
use session_core::{SessionStore, SetupError};
use session_filesystem::FileStore;

const TTL: Duration = Duration::from_secs(300);

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every file and directory below `root` (itself included), with its mode.
fn tree(root: &Path) -> Vec<(PathBuf, u32)> {
    let mut found = vec![(root.to_owned(), mode_of(root))];
    for entry in std::fs::read_dir(root).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(tree(&path));
        } else {
            found.push((path.clone(), mode_of(&path)));
        }
    }
    found
}

/// A directory `name` in `parent` with permission bits `mode`.
fn dir_with_mode(parent: &Path, name: &str, mode: u32) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
    dir
}

/// Writes through every path of the store that creates files: create, compare-and-set,
/// touch, rotate (and the bucket compaction that many writes to one key trigger).
async fn write_everything(store: &FileStore) {
    store.put("session:a", b"one", TTL).await.unwrap();
    assert!(store
        .compare_and_set("session:a", b"one", b"two", TTL)
        .await
        .unwrap());
    assert!(store.touch("session:a", TTL).await.unwrap());
    assert!(store
        .rotate("session:a", b"two", "session:b", b"three", TTL)
        .await
        .unwrap());
    for round in 0..40u32 {
        store
            .put("session:c", &round.to_be_bytes(), TTL)
            .await
            .unwrap();
    }
}

fn assert_modes(root: &Path, file_mode: u32, dir_mode: u32) {
    let tree = tree(root);
    let files = tree.iter().filter(|(path, _)| path.is_file()).count();
    assert!(files >= 4, "only {files} files were written: {tree:?}");
    for (path, mode) in tree {
        // Lock files hold no data and are always the owner's alone.
        let is_lock = path
            .parent()
            .is_some_and(|parent| parent.ends_with("locks"));
        let expected = match (path.is_dir(), is_lock) {
            (true, _) => dir_mode,
            (false, true) => 0o600,
            (false, false) => file_mode,
        };
        assert_eq!(
            mode,
            expected,
            "{} has mode {mode:o}, not {expected:o}",
            path.display()
        );
    }
}

#[tokio::test]
async fn files_are_0600_and_directories_0700_by_default() {
    let temp = tempfile::tempdir().unwrap();
    let store = FileStore::open(temp.path().join("sessions")).unwrap();
    write_everything(&store).await;
    assert_modes(store.dir(), 0o600, 0o700);
    assert_eq!(store.file_mode(), 0o600);
}

#[tokio::test]
async fn the_file_mode_is_honoured() {
    let temp = tempfile::tempdir().unwrap();
    // A group-readable mode accepts an existing directory the group can list.
    let dir = dir_with_mode(temp.path(), "shared", 0o750);
    let store = FileStore::builder()
        .dir(&dir)
        .file_mode(0o640)
        .build()
        .unwrap();
    write_everything(&store).await;
    assert_modes(&dir, 0o640, 0o750);
}

#[tokio::test]
async fn an_existing_private_directory_is_used_and_its_subdirectories_made_private() {
    let temp = tempfile::tempdir().unwrap();
    let dir = dir_with_mode(temp.path(), "private", 0o700);
    // A store directory made before the modes were enforced, by an umask of 022.
    std::fs::create_dir_all(dir.join("index-v5")).unwrap();
    std::fs::set_permissions(dir.join("index-v5"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let store = FileStore::open(&dir).unwrap();
    write_everything(&store).await;
    assert_modes(&dir, 0o600, 0o700);
}

#[test]
fn a_directory_open_to_others_is_refused_with_one_line() {
    let temp = tempfile::tempdir().unwrap();
    for (name, mode) in [("world", 0o755), ("group", 0o750), ("writable", 0o733)] {
        let dir = dir_with_mode(temp.path(), name, mode);
        let Err(SetupError::Config(error)) = FileStore::open(&dir) else {
            panic!("a {mode:o} directory was accepted");
        };
        assert_eq!(error.option, "SESSION_FILE_DIR");
        let message = error.to_string();
        assert!(!message.contains('\n'), "{message}");
        assert!(message.contains("SESSION_FILE_MODE"), "{message}");
        assert!(message.contains(&format!("{mode:o}")), "{message}");
        // Nothing was written into it, and its mode is untouched.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        assert_eq!(mode_of(&dir), mode);
    }
}

#[test]
fn a_mode_the_owner_cannot_read_and_write_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    for mode in [0o400, 0o200, 0o1600, 0o7777] {
        let result = FileStore::builder()
            .dir(temp.path().join("never"))
            .file_mode(mode)
            .build();
        let Err(SetupError::Config(error)) = result else {
            panic!("mode {mode:o} was accepted");
        };
        assert_eq!(error.option, "SESSION_FILE_MODE");
    }
    assert!(!temp.path().join("never").exists());
}
