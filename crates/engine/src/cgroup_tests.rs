//! The file writes and reads of both cgroup layouts, over a directory that
//! stands for the cgroup filesystem (the real v1 run is in the integration
//! tests; the real v2 hierarchy of this kind of machine has no
//! controllers), and the parsing of the mount tables.

use super::*;

/// A machine like the one CI runs on: v1 controllers, each mounted alone,
/// berth's memory cgroup nested, an empty unified hierarchy beside.
const HYBRID_MOUNTINFO: &str = "\
25 30 0:23 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
27 25 0:25 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
28 25 0:26 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
29 25 0:27 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
30 25 0:28 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
31 25 0:29 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
";
const HYBRID_OWN: &str = "\
9:name=systemd:/
8:pids:/
4:memory:/process_api/abc
2:cpuacct:/
1:cpu:/
0::/
";

/// A systemd machine on cgroup v2 with `cpu,cpuacct`-style naming absent,
/// berth in a session scope.
const V2_MOUNTINFO: &str = "\
35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";
const V2_OWN: &str = "0::/user.slice/user-1000.slice/session-2.scope\n";

#[test]
fn a_hybrid_machine_uses_its_v1_hierarchies_where_berth_is() {
    let m = Mounts::parse(HYBRID_MOUNTINFO, HYBRID_OWN);
    assert_eq!(
        m.v1_for(Controller::Memory),
        Some((
            PathBuf::from("/sys/fs/cgroup/memory/process_api/abc"),
            vec![Controller::Memory]
        ))
    );
    assert_eq!(
        m.v1_for(Controller::CpuAcct),
        Some((
            PathBuf::from("/sys/fs/cgroup/cpuacct"),
            vec![Controller::CpuAcct]
        ))
    );
    assert_eq!(
        m.v2,
        Some((PathBuf::from("/sys/fs/cgroup/unified"), "/".to_string()))
    );
}

#[test]
fn co_mounted_v1_controllers_share_one_directory() {
    let info = "27 25 0:25 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n";
    let m = Mounts::parse(info, "2:cpu,cpuacct:/svc\n");
    assert_eq!(
        m.v1_for(Controller::Cpu),
        Some((
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/svc"),
            vec![Controller::Cpu, Controller::CpuAcct]
        ))
    );
}

#[test]
fn a_v2_machine_nests_under_berths_own_cgroup() {
    let m = Mounts::parse(V2_MOUNTINFO, V2_OWN);
    assert_eq!(
        m.v2,
        Some((
            PathBuf::from("/sys/fs/cgroup"),
            "/user.slice/user-1000.slice/session-2.scope".to_string()
        ))
    );
    assert!(m.v1.is_empty());
}

#[test]
fn a_bind_mounted_subtree_is_read_relative_to_its_root() {
    // A container that sees its own cgroup as the root of the mount.
    let info = "35 24 0:30 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
    let m = Mounts::parse(info, "0::/docker/abc/inner\n");
    assert_eq!(
        m.v2,
        Some((PathBuf::from("/sys/fs/cgroup"), "/inner".to_string()))
    );
}

#[test]
fn mount_points_with_spaces_are_unescaped() {
    assert_eq!(unescape("/mnt/my\\040cgroups"), "/mnt/my cgroups");
}

fn limits() -> Limits {
    Limits {
        memory: Some(100 << 20),
        memory_swap: None,
        cpu_millis: Some(500),
        cpu_shares: Some(1024),
        pids: Some(32),
    }
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn v2_limits_are_written_in_the_unified_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("api-1.7.0");
    std::fs::create_dir(&dir).unwrap();
    // The kernel offers swap accounting: the file exists.
    std::fs::write(dir.join("memory.swap.max"), "max").unwrap();
    let cgroup = ReplicaCgroup {
        version: Version::V2,
        dirs: vec![Hierarchy {
            dir: dir.clone(),
            controllers: vec![Controller::Memory, Controller::Cpu, Controller::Pids],
        }],
        memory_limit: Some(100 << 20),
    };
    cgroup.write_limits(&limits()).unwrap();
    assert_eq!(read(&dir, "memory.max"), "104857600");
    // Docker's default: as much swap as memory.
    assert_eq!(read(&dir, "memory.swap.max"), "104857600");
    assert_eq!(read(&dir, "cpu.max"), "50000 100000");
    assert_eq!(read(&dir, "cpu.weight"), "39");
    assert_eq!(read(&dir, "pids.max"), "32");

    let swap = Limits {
        memory_swap: Some(SwapLimit::Bytes(300 << 20)),
        ..limits()
    };
    cgroup.write_limits(&swap).unwrap();
    assert_eq!(read(&dir, "memory.swap.max"), (200u64 << 20).to_string());
    let unlimited = Limits {
        memory_swap: Some(SwapLimit::Unlimited),
        ..limits()
    };
    cgroup.write_limits(&unlimited).unwrap();
    assert_eq!(read(&dir, "memory.swap.max"), "max");
}

#[test]
fn v1_limits_are_written_in_each_controllers_hierarchy() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = |c: &str| {
        let d = tmp.path().join(c).join("api-1.7.0");
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let (memory, cpu, pids) = (dir("memory"), dir("cpu"), dir("pids"));
    let cgroup = ReplicaCgroup {
        version: Version::V1,
        dirs: vec![
            Hierarchy {
                dir: memory.clone(),
                controllers: vec![Controller::Memory],
            },
            Hierarchy {
                dir: cpu.clone(),
                controllers: vec![Controller::Cpu],
            },
            Hierarchy {
                dir: pids.clone(),
                controllers: vec![Controller::Pids],
            },
        ],
        memory_limit: Some(100 << 20),
    };
    cgroup.write_limits(&limits()).unwrap();
    assert_eq!(read(&memory, "memory.limit_in_bytes"), "104857600");
    // No swap accounting in this kernel: nothing written for it.
    assert!(!memory.join("memory.memsw.limit_in_bytes").exists());
    assert_eq!(read(&cpu, "cpu.cfs_period_us"), "100000");
    assert_eq!(read(&cpu, "cpu.cfs_quota_us"), "50000");
    assert_eq!(read(&cpu, "cpu.shares"), "1024");
    assert_eq!(read(&pids, "pids.max"), "32");
}

#[test]
fn usage_and_oom_kills_are_read_from_either_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let v2 = tmp.path().join("v2");
    std::fs::create_dir(&v2).unwrap();
    std::fs::write(v2.join("memory.current"), "157286400\n").unwrap();
    std::fs::write(v2.join("memory.stat"), "anon 1\ninactive_file 52428800\n").unwrap();
    std::fs::write(
        v2.join("memory.events"),
        "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n",
    )
    .unwrap();
    std::fs::write(v2.join("cpu.stat"), "usage_usec 2500000\nuser_usec 1\n").unwrap();
    let cgroup = ReplicaCgroup {
        version: Version::V2,
        dirs: vec![Hierarchy {
            dir: v2,
            controllers: vec![Controller::Memory, Controller::Cpu],
        }],
        memory_limit: Some(100 << 20),
    };
    assert_eq!(
        cgroup.usage(),
        Usage {
            memory_bytes: 100 << 20,
            cpu_seconds: Some(2.5),
            oom_kills: 1,
            memory_limit: Some(100 << 20),
        }
    );

    let memory = tmp.path().join("memory");
    let acct = tmp.path().join("cpuacct");
    std::fs::create_dir(&memory).unwrap();
    std::fs::create_dir(&acct).unwrap();
    std::fs::write(memory.join("memory.usage_in_bytes"), "1048576\n").unwrap();
    std::fs::write(
        memory.join("memory.stat"),
        "cache 0\ntotal_inactive_file 4096\n",
    )
    .unwrap();
    std::fs::write(
        memory.join("memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
    )
    .unwrap();
    std::fs::write(acct.join("cpuacct.usage"), "1500000000\n").unwrap();
    let cgroup = ReplicaCgroup {
        version: Version::V1,
        dirs: vec![
            Hierarchy {
                dir: memory,
                controllers: vec![Controller::Memory],
            },
            Hierarchy {
                dir: acct,
                controllers: vec![Controller::CpuAcct],
            },
        ],
        memory_limit: None,
    };
    assert_eq!(
        cgroup.usage(),
        Usage {
            memory_bytes: 1_048_576 - 4096,
            cpu_seconds: Some(1.5),
            oom_kills: 2,
            memory_limit: None,
        }
    );
}

#[test]
fn cpu_shares_become_v2_weights_as_runc_converts_them() {
    assert_eq!(shares_to_weight(2), 1);
    assert_eq!(shares_to_weight(1024), 39);
    assert_eq!(shares_to_weight(262_144), 10_000);
}

#[test]
fn only_the_limits_a_missing_controller_would_enforce_are_named() {
    let cgroups = Cgroups {
        version: Version::V2,
        hierarchies: vec![Hierarchy {
            dir: PathBuf::from("/nowhere"),
            controllers: vec![Controller::Memory, Controller::Cpu],
        }],
        missing: vec![(Controller::Pids, "no pids here".into())],
    };
    assert_eq!(
        cgroups.unenforceable(&limits()),
        vec![("pids_limit", "no pids here".to_string())]
    );
    assert!(cgroups.unenforceable(&Limits::default()).is_empty());
    assert_eq!(
        all_unenforceable(
            &Limits {
                memory: Some(1),
                ..Limits::default()
            },
            "off"
        ),
        vec![("memory limit", "off".to_string())]
    );
}

#[test]
fn replica_cgroups_are_named_for_people_and_unique_per_run() {
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("berth").join("demo");
    std::fs::create_dir_all(&project).unwrap();
    let cgroups = Cgroups {
        version: Version::V2,
        hierarchies: vec![Hierarchy {
            dir: project.clone(),
            controllers: vec![],
        }],
        missing: vec![],
    };
    let a = cgroups.replica("api-1", &Limits::default()).unwrap();
    let b = cgroups.replica("api-1", &Limits::default()).unwrap();
    assert_ne!(a.dirs[0].dir, b.dirs[0].dir);
    let name = a.dirs[0]
        .dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    assert!(name.starts_with("api-1."), "{name}");
    assert_eq!(sanitize("api-2 healthcheck/x"), "api-2_healthcheck_x");
    assert!(a.remove() && b.remove());
    assert!(!a.dirs[0].dir.exists());
}
