//! Reliability: identical runs are bit-identical in every mode; a run killed inside a checkpoint
//! write (for certain, by a test-only pause) or at blind moments leaves its newest logged
//! checkpoint, which loads and resumes to exactly the uninterrupted losses; a full disk fails a checkpoint write cleanly; one run diverging
//! stops alone; GPU errors become messages. (The soak test has a binary of its own.)

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use srgpt::data::Corpus;
use srgpt::model::config::{ModelConfig, TrainConfig};
use srgpt::precision::Precision;
use srgpt::train::{checkpoint, Metric, TrainSpec, Trainer};

fn corpus() -> Corpus {
    Corpus::from_bytes(
        "test",
        "It is a truth universally acknowledged, that a single man in possession of a good fortune. ".repeat(30).as_bytes(),
    )
    .unwrap()
}

fn spec(c: &Corpus, precisions: Vec<Precision>, steps: u32) -> TrainSpec {
    TrainSpec {
        preset: "micro".into(),
        model: ModelConfig { n_layer: 1, n_head: 2, d: 16, ctx: 16, vocab: c.vocab_size() },
        train: TrainConfig { batch: 4, lr: 1e-2, warmup: 3, steps, grad_accum: 1 },
        precisions,
        seed: 11,
        eval_every: 5,
        eval_batches: 2,
        measure_fidelity: true,
    }
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("srgpt-rel-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn losses(lines: &[Metric]) -> Vec<(String, u32, Option<u32>, Option<u32>)> {
    lines.iter().map(|l| (l.run.clone(), l.step, l.train_loss.map(f32::to_bits), l.val_loss.map(f32::to_bits))).collect()
}

#[test]
fn identical_runs_are_bit_identical_in_every_mode() {
    let c = corpus();
    let mut results = Vec::new();
    for name in ["a", "b"] {
        let dir = tmp(&format!("det-{name}"));
        let mut t = Trainer::new(gpu(), c.clone(), spec(&c, Precision::ALL.to_vec(), 12)).unwrap();
        let mut lines = Vec::new();
        while !t.finished() {
            lines.extend(t.step(gpu()).unwrap());
        }
        t.save_checkpoints(gpu(), &dir).unwrap();
        lines.extend(t.flush(gpu()).unwrap());
        results.push((losses(&lines), dir));
    }
    assert_eq!(results[0].0, results[1].0, "losses differ between identical runs");
    for p in Precision::ALL {
        let file = format!("{}.safetensors", p.name());
        let (a, b) = (std::fs::read(results[0].1.join(&file)).unwrap(), std::fs::read(results[1].1.join(&file)).unwrap());
        let (a, b) = (safetensors::SafeTensors::deserialize(&a).unwrap(), safetensors::SafeTensors::deserialize(&b).unwrap());
        let mut names = a.names();
        names.sort();
        assert!(names.len() > 10);
        for n in names {
            assert_eq!(a.tensor(n).unwrap().data(), b.tensor(n).unwrap().data(), "{p}: tensor {n} differs");
        }
    }
    for (_, dir) in results {
        std::fs::remove_dir_all(dir).ok();
    }
}

fn srgpt() -> Command {
    Command::new(env!("CARGO_BIN_EXE_srgpt"))
}

const STEPS: &str = "60";

fn train_args(out: &Path) -> Vec<String> {
    let mut a: Vec<String> =
        ["train", "--headless", "--n-layer", "1", "--n-head", "2", "--d", "16", "--ctx", "16", "--batch", "4", "--eval-every", "10"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    a.extend(
        ["--eval-batches", "1", "--steps", STEPS, "--seed", "5", "--precision", "fp32,bf16-sr", "--ckpt-every", "1", "--out"]
            .map(String::from),
    );
    a.push(out.display().to_string());
    a
}

/// The checkpoint steps a run's stderr logged for `mode`, in order.
fn logged_checkpoints(stderr: &Path, mode: &str) -> Vec<u32> {
    let file = format!("{mode}.safetensors");
    std::fs::read_to_string(stderr)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("checkpoint: "))
        .filter_map(|l| l.rsplit_once(" (step "))
        .filter(|(path, _)| Path::new(path).file_name().is_some_and(|n| n == file.as_str()))
        .map(|(_, step)| step.trim_end_matches(')').parse().unwrap())
        .collect()
}

/// A child process killed (SIGKILL) and reaped when dropped, also when a test fails.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// How a trial's run is killed: blind, once `metrics.jsonl` holds a number of lines and then a
/// fraction of a step later, or paused for certain inside the n-th write of a mode's
/// checkpoint (the test-only `SRGPT_TEST_PAUSE_WRITE`), half of it written.
#[derive(Clone, Copy, Debug)]
enum Kill {
    After { lines: usize, step_fraction: f64 },
    InsideWrite(&'static str, u32),
}

#[test]
fn a_killed_run_resumes_from_its_newest_checkpoint_exactly() {
    const MODES: [&str; 2] = ["fp32", "bf16-sr"];
    let reference = tmp("kill-ref");
    assert!(srgpt().args(train_args(&reference)).stderr(std::process::Stdio::null()).status().unwrap().success());
    let want = logged_losses(&reference);
    // the reference run's time per step, from its first logged step to its last
    let elapsed: Vec<f64> = std::fs::read_to_string(reference.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["elapsed_s"].as_f64().unwrap())
        .collect();
    let step_s = (elapsed.last().unwrap() - elapsed.first().unwrap()) / STEPS.parse::<f64>().unwrap();

    // four kills inside a checkpoint write for certain (each mode, early and late), six blind
    // ones at a fixed sequence of points of the run: once its metrics.jsonl holds between 3
    // lines and 90% of the reference's, then up to a step's time later, wherever that falls
    // in the step (the run's own progress, not a wall-clock delay, places them: this
    // machine's speed can double from one run to the next)
    let mut kills = vec![
        Kill::InsideWrite("fp32", 9),
        Kill::InsideWrite("bf16-sr", 23),
        Kill::InsideWrite("fp32", 41),
        Kill::InsideWrite("bf16-sr", 52),
    ];
    let last = elapsed.len() * 9 / 10;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..6 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        kills.push(Kill::After { lines: 3 + (state % (last - 3) as u64) as usize, step_fraction: (state >> 32) as f64 % 1000.0 / 1000.0 });
    }
    let mut blind_inside = 0;
    for (trial, &kill) in kills.iter().enumerate() {
        let dir = tmp(&format!("kill-{trial}"));
        let stderr = std::env::temp_dir().join(format!("srgpt-rel-kill-{trial}-{}.stderr", std::process::id()));
        let mut command = srgpt();
        command.args(train_args(&dir)).stderr(std::fs::File::create(&stderr).unwrap());
        if let Kill::InsideWrite(mode, nth) = kill {
            command.env("SRGPT_TEST_PAUSE_WRITE", format!("{mode}.safetensors:{nth}"));
        }
        let mut child = KillOnDrop(command.spawn().unwrap());
        let started = std::time::Instant::now();
        let finished_first = match kill {
            Kill::After { lines, step_fraction } => {
                while !std::fs::read_to_string(dir.join("metrics.jsonl")).is_ok_and(|t| t.lines().count() >= lines) {
                    assert!(child.0.try_wait().unwrap().is_none(), "trial {trial}: the run ended before {lines} lines");
                    assert!(started.elapsed() < Duration::from_secs(300), "trial {trial}: the run never reached {lines} lines");
                    std::thread::sleep(Duration::from_millis(2));
                }
                std::thread::sleep(Duration::from_secs_f64(step_fraction * step_s));
                child.0.try_wait().unwrap().is_some()
            }
            Kill::InsideWrite(mode, _) => {
                let paused = dir.join(format!(".{mode}.safetensors.tmp.paused"));
                while !paused.exists() {
                    assert!(child.0.try_wait().unwrap().is_none(), "trial {trial}: the run ended without pausing in its write");
                    assert!(started.elapsed() < Duration::from_secs(120), "trial {trial}: the run never paused in its write");
                    std::thread::sleep(Duration::from_millis(5));
                }
                false
            }
        };
        drop(child);
        let mut inside = false;
        for mode in MODES {
            let path = dir.join(format!("{mode}.safetensors"));
            let logged = logged_checkpoints(&stderr, mode);
            if !path.exists() {
                assert!(logged.is_empty(), "trial {trial} ({kill:?}): {mode} logged checkpoints {logged:?}, none on disk");
                continue; // killed before the first checkpoint
            }
            let ckpt = checkpoint::load(&path).unwrap_or_else(|e| panic!("trial {trial} ({kill:?}): {mode} checkpoint does not load: {e}"));
            let from = ckpt.state.step;
            // the newest logged checkpoint is on disk, or one newer whose line the kill cut
            // off (checkpoints every step; each set is logged once all modes are written)
            let newest_logged = logged.last().copied().unwrap_or(0);
            assert!(
                from == newest_logged || from == newest_logged + 1,
                "trial {trial} ({kill:?}): {mode} on disk is step {from}, the newest logged is {newest_logged}"
            );
            if let Kill::InsideWrite(paused, nth) = kill {
                if paused == mode {
                    assert_eq!(from, nth - 1, "trial {trial}: the checkpoint before the interrupted write must be on disk");
                    assert_eq!(from, newest_logged, "trial {trial}: {mode} must resume from its newest logged checkpoint");
                    let partial = std::fs::metadata(dir.join(format!(".{mode}.safetensors.tmp"))).unwrap().len();
                    assert!(partial > 0 && partial < std::fs::metadata(&path).unwrap().len(), "trial {trial}: the write was not cut");
                }
            }
            if from == ckpt.state.train.steps {
                continue; // killed after the run's end: resuming it trains nothing
            }
            let out = tmp(&format!("kill-{trial}-{mode}"));
            let status = srgpt()
                .args(["train", "--headless", "--resume"])
                .arg(&path)
                .arg("--out")
                .arg(&out)
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "trial {trial}: resuming {mode} from step {from} failed");
            // the new folder starts with the curve up to the checkpoint, copied
            let got: Vec<_> = logged_losses(&out).into_iter().filter(|l| l["step"].as_u64().unwrap() > from as u64).collect();
            let expected: Vec<_> = want.iter().filter(|l| l["run"] == mode && l["step"].as_u64().unwrap() > from as u64).cloned().collect();
            assert!(
                !got.is_empty() && got.len() == expected.len(),
                "trial {trial}: {mode} resumed from step {from} logged {} lines",
                got.len()
            );
            assert_eq!(got, expected, "trial {trial}: {mode} resumed from step {from} differs from the uninterrupted run");
            inside = true;
            std::fs::remove_dir_all(out).ok();
        }
        match kill {
            Kill::InsideWrite(..) => assert!(inside, "trial {trial}: a kill inside a write must leave a run to resume"),
            Kill::After { .. } => blind_inside += inside as u32,
        }
        assert!(!finished_first || dir.join("summary.json").exists());
        std::fs::remove_dir_all(dir).ok();
        std::fs::remove_file(stderr).ok();
    }
    assert!(blind_inside >= 4, "only {blind_inside} of 6 blind kills left a run to resume from inside: the delays missed it");
    std::fs::remove_dir_all(reference).ok();
}

/// A size-limited tmpfs, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, bytes: usize) -> Option<SmallDisk> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| SmallDisk(dir.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A disk that fills up during a checkpoint write: a clear error, a non-zero exit, the
/// previous checkpoint intact, no temporary file left. Needs root to mount a small tmpfs;
/// skipped without it unless SRGPT_CI is set (as in CI).
#[test]
fn a_full_disk_fails_the_checkpoint_write_and_keeps_the_previous_one() {
    let first = tmp("full-first");
    let mut args = train_args(&first);
    let steps = args.iter().position(|a| a == "--steps").unwrap();
    args[steps + 1] = "4".into();
    assert!(srgpt().args(&args).stderr(std::process::Stdio::null()).status().unwrap().success());
    let before = std::fs::read(first.join("fp32.safetensors")).unwrap();
    // room for the run's files and some metrics, not for a second checkpoint beside the first
    let size = (std::fs::read_dir(&first).unwrap().map(|e| e.unwrap().metadata().unwrap().len() as usize).sum::<usize>() + 24 * 1024)
        .next_multiple_of(4096);
    let mount_point = std::env::temp_dir().join(format!("srgpt-small-disk-{}", std::process::id()));
    let Some(disk) = SmallDisk::mount(&mount_point, size) else {
        assert!(std::env::var_os("SRGPT_CI").is_none(), "mounting a small tmpfs failed (this test needs root)");
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    for entry in std::fs::read_dir(&first).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), disk.0.join(entry.file_name())).unwrap();
    }
    let ckpt = disk.0.join("fp32.safetensors");
    let out = srgpt().args(["train", "--headless", "--steps", "8", "--resume"]).arg(&ckpt).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the write should fail: {err}");
    assert!(err.contains("writing checkpoint") && err.contains("previous one is left"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(std::fs::read(&ckpt).unwrap(), before, "the previous checkpoint is intact");
    assert!(checkpoint::load(&ckpt).is_ok());
    let leftovers: Vec<_> =
        std::fs::read_dir(&disk.0).unwrap().filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().ends_with(".tmp")).collect();
    assert!(leftovers.is_empty(), "temporary files left behind");
    drop(disk);
    std::fs::remove_dir_all(first).ok();
}

#[test]
fn a_diverged_run_stops_alone_and_keeps_its_last_good_checkpoint() {
    let gpu = &srgpt::gpu::Gpu::new(None).unwrap();
    let c = corpus();
    let dir = tmp("diverge-one");
    let mut t = Trainer::new(gpu, c.clone(), spec(&c, vec![Precision::Fp32, Precision::Bf16Sr, Precision::Bf16], 20)).unwrap();
    while t.step < 6 {
        t.step(gpu).unwrap();
    }
    t.save_checkpoints(gpu, &dir).unwrap();
    let good = std::fs::read(dir.join("bf16-sr.safetensors")).unwrap();
    // poison one run's weights, as a blow-up would
    let poisoned = &t.runs[1].model;
    let n = poisoned.num_params();
    gpu.upload(&poisoned.params, 0, &vec![0xffu8; n * 2]);
    while !t.finished() {
        t.step(gpu).unwrap();
    }
    t.save_checkpoints(gpu, &dir).unwrap();
    let statuses: Vec<_> = t.runs.iter().map(|r| r.status).collect();
    assert_eq!(statuses[0], srgpt::train::RunStatus::Done);
    assert_eq!(statuses[2], srgpt::train::RunStatus::Done);
    assert!(matches!(statuses[1], srgpt::train::RunStatus::Diverged(s) if s == 7), "{statuses:?}");
    let message = t.runs[1].message.clone().unwrap();
    assert!(message.contains("run bf16-sr diverged at step 7"), "{message}");
    assert!(t.runs[0].val_loss.is_some_and(f32::is_finite) && t.runs[2].val_loss.is_some_and(f32::is_finite));
    assert_eq!(std::fs::read(dir.join("bf16-sr.safetensors")).unwrap(), good, "the diverged run keeps its last good checkpoint");
    assert!(checkpoint::load(&dir.join("fp32.safetensors")).unwrap().state.step == 20);
    std::fs::remove_dir_all(dir).ok();
}

/// A wait for the GPU that outlasts the notice interval says so and goes on: a slow adapter
/// finishes a slow step instead of failing it (here the interval is shortened to 1 ms, so
/// every step outlasts it).
#[test]
fn a_long_gpu_wait_says_so_and_goes_on_until_the_step_is_done() {
    let mut gpu = srgpt::gpu::Gpu::new(None).unwrap();
    gpu.wait_notice = Duration::from_millis(1);
    let c = corpus();
    let mut s = spec(&c, vec![Precision::Fp32, Precision::Bf16Sr], 4);
    (s.model.d, s.model.n_head, s.train.batch) = (64, 4, 16);
    let mut t = Trainer::new(&gpu, c.clone(), s).unwrap();
    let mut lines = Vec::new();
    while !t.finished() {
        lines.extend(t.step(&gpu).unwrap());
    }
    lines.extend(t.flush(&gpu).unwrap());
    let notices = gpu.long_wait_notices.load(std::sync::atomic::Ordering::Relaxed);
    assert!(notices > 0, "no wait outlasted 1 ms: the test shows nothing");
    let trained = lines.iter().filter(|l| l.train_loss.is_some_and(f32::is_finite)).count();
    assert_eq!(trained, 8, "every step of both runs finished");
}

#[test]
fn gpu_validation_errors_become_messages_naming_what_was_done() {
    let gpu = srgpt::gpu::Gpu::new(None).unwrap();
    // a workgroup of zero threads passes the WGSL parser but not validation
    let spec = srgpt::gpu::ShaderSpec::new("convert.wgsl", "convert").define("SRC", "f32").define("DST", "f32").flag("PAIR_DST", true);
    let broken = spec.source().unwrap().replace("@workgroup_size(64)", "@workgroup_size(0)");
    let module = gpu
        .device
        .create_shader_module(wgpu::ShaderModuleDescriptor { label: Some("broken"), source: wgpu::ShaderSource::Wgsl(broken.into()) });
    drop(module);
    let err = gpu.check_errors("compiling a broken shader").unwrap_err().to_string();
    assert!(err.contains("compiling a broken shader"), "{err}");
    // a validation error from srgpt's own path: a dispatch missing one of its kernel's
    // bindings; the message names the kernel and variant it was binding, and wgpu's reason
    let src = gpu.buffer_from("convert src", &[0; 16]).unwrap();
    let params = srgpt::kernels::convert::ConvertParams::default();
    let err = gpu
        .dispatch("convert", &spec, &[(0, &src)], 2, &params, [1, 1, 1])
        .err()
        .expect("a dispatch without its output binding is refused");
    let err = format!("{err:#}");
    assert!(err.contains("binding convert (convert.wgsl:convert["), "the message names the operation and the variant: {err}");
    assert!(err.contains("create_bind_group"), "and wgpu's reason: {err}");
    // the device still works afterwards
    assert!(gpu.check_errors("nothing").is_ok());
    let b = gpu.buffer_from("after", &[1, 2, 3, 4]).unwrap();
    assert_eq!(gpu.read_bytes(&b, 0, 4).unwrap(), vec![1, 2, 3, 4]);
}
