//! A throwaway OpenSSH server on 127.0.0.1 for Git-over-SSH tests: its own host key, one
//! authorized client key, key-only auth, run in the foreground and killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct SshServer {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub user: String,
    /// `[127.0.0.1]:port <type> <key>`, a known_hosts line for this server.
    pub known_hosts_line: String,
    child: Child,
}

/// `GITOPS_CANARY_TEST_NO_SSHD` makes it act as if sshd were absent (to exercise the skip path).
pub fn sshd_path() -> Option<PathBuf> {
    if std::env::var_os("GITOPS_CANARY_TEST_NO_SSHD").is_some() {
        return None;
    }
    ["/usr/sbin/sshd", "/usr/bin/sshd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// `ssh-keygen` an ed25519 key at `path` (with `passphrase`, may be empty).
pub fn keygen(path: &Path, passphrase: &str) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", passphrase, "-C", "test", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen");
    assert!(st.success());
}

impl SshServer {
    /// Start sshd accepting `authorized` public keys for the current user; None (with a SKIP
    /// message) when sshd is not installed.
    pub fn start(authorized: &[&Path]) -> Option<SshServer> {
        let Some(sshd) = sshd_path() else {
            use std::io::Write as _;
            assert!(
                std::env::var_os("GITOPS_CANARY_REQUIRE_TOOLS").is_none(),
                "sshd not found (run .ci/install-git.sh); GITOPS_CANARY_REQUIRE_TOOLS is set"
            );
            let _ = writeln!(
                std::io::stderr(),
                "SKIP: sshd not found (run .ci/install-git.sh)"
            );
            return None;
        };
        let user = String::from_utf8(Command::new("id").arg("-un").output().ok()?.stdout)
            .ok()?
            .trim()
            .to_string();
        // sshd running as root wants its privilege-separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let dir = tempfile::tempdir().expect("tempdir");
        let host_key = dir.path().join("host_ed25519");
        keygen(&host_key, "");
        let mut auth = String::new();
        for k in authorized {
            auth.push_str(&std::fs::read_to_string(k.with_extension("pub")).expect("pub key"));
        }
        let auth_file = dir.path().join("authorized_keys");
        std::fs::write(&auth_file, auth).expect("write");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
                 PidFile {}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n\
                 LogLevel ERROR\n",
                host_key.display(),
                auth_file.display(),
                dir.path().join("sshd.pid").display(),
            ),
        )
        .expect("write");
        let child = Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // The readiness probe below makes sshd log a closed connection; keep it out of the
            // test output but on disk for a failed start.
            .stderr(std::fs::File::create(dir.path().join("sshd.log")).expect("log file"))
            .spawn()
            .expect("spawn sshd");
        let host_pub = std::fs::read_to_string(host_key.with_extension("pub")).expect("pub");
        let mut parts = host_pub.split_whitespace();
        let known_hosts_line = format!(
            "[127.0.0.1]:{port} {} {}\n",
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default()
        );
        let server = SshServer {
            dir,
            port,
            user,
            known_hosts_line,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not start: {}",
                std::fs::read_to_string(server.dir.path().join("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }

    /// `ssh://user@127.0.0.1:port/<absolute path>`
    pub fn url(&self, repo: &Path) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            repo.display()
        )
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
