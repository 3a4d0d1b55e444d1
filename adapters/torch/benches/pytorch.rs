//! The devnet learner's training step in tch against the same step in PyTorch eager
//! (`bench/pytorch_step.py`), on the same batches with the peers' answers given (no network):
//! the two alternate round by round in one run, on one thread and on all threads, and each
//! reports where its time goes. PyTorch runs in its own process (`scripts/pytorch.sh`
//! installs it; `DEEPNODE_PYTHON` names another); its rounds are timed inside it.
//! `DEEPNODE_BENCH_QUICK=1`: fewer rounds.

#[path = "../tests/common/python.rs"]
mod python;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use deepnode_node::Model;
use deepnode_torch::baseline::Fixture;
use deepnode_torch::data::TextCorpus;
use deepnode_torch::{
    EncoderConfig, LearnerConfig, LocalConfig, LocalModel, ServeConfig, StepTimings, TorchModel,
};

const PHASES: [&str; 8] = [
    "route",
    "peers",
    "forward",
    "scores",
    "backward",
    "optimizer",
    "grads",
    "student",
];

/// Seconds per phase over a round, and the round's wall-clock seconds.
#[derive(Default, Clone)]
struct Round {
    total: f64,
    phases: BTreeMap<&'static str, f64>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let quick = std::env::var_os("DEEPNODE_BENCH_QUICK").is_some();
    let (rounds, steps) = if quick { (3, 10) } else { (7, 30) };
    let (python, version) = python::with_torch()?;
    let (batch, seq) = (4usize, 32usize);
    let config = LocalConfig {
        peers: 8,
        ..LearnerConfig::default().local
    };
    let peers: Vec<TorchModel> = (0..8)
        .map(|j| TorchModel::new(10 + j, EncoderConfig::default(), ServeConfig::default()))
        .collect::<Result<_, _>>()?;
    let models: Vec<&dyn Model> = peers.iter().map(|p| p as &dyn Model).collect();
    let corpus = TextCorpus::system_shard(0, 4)?;
    let fixture = Fixture::new(config, &corpus, batch, seq, 16, &models)?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("fixture");
    let mut model = LocalModel::new(config)?;
    fixture.write(&model, &path)?;

    let mut child = Command::new(&python)
        .arg(python::script())
        .arg("serve")
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut to_py = child.stdin.take().ok_or("no stdin")?;
    let mut from_py = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let mut line = String::new();
    from_py.read_line(&mut line)?;
    if line.trim() != "ready" {
        return Err(format!("pytorch_step.py: {line}").into());
    }
    let mut pytorch =
        move |steps: usize, threads: usize| -> Result<Round, Box<dyn std::error::Error>> {
            writeln!(to_py, "{steps} {threads}")?;
            let mut line = String::new();
            from_py.read_line(&mut line)?;
            let mut round = Round::default();
            for field in line.split_whitespace() {
                let (name, value) = field.split_once('=').ok_or("a field without =")?;
                let value: f64 = value.parse()?;
                match PHASES.iter().find(|p| **p == name) {
                    Some(p) => {
                        round.phases.insert(p, value);
                    }
                    None if name == "total" => round.total = value,
                    None => return Err(format!("unknown field {name}").into()),
                }
            }
            Ok(round)
        };
    let mut done = 0usize;
    let mut tch_round =
        |steps: usize, threads: usize| -> Result<Round, Box<dyn std::error::Error>> {
            tch::set_num_threads(threads as i32);
            let mut sum = StepTimings::default();
            let start = std::time::Instant::now();
            for _ in 0..steps {
                let t = fixture.step(&mut model, done)?.timings;
                done += 1;
                sum += t;
            }
            let total = start.elapsed().as_secs_f64();
            let phases = sum
                .phases()
                .iter()
                .map(|(n, d)| (*n, d.as_secs_f64()))
                .collect();
            Ok(Round { total, phases })
        };

    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "the devnet learner's step: batch {batch} x {seq} bytes, D = 32, 8 peers, k = {}, student \
         hidden {}, {} student steps; peers' answers given; tch against PyTorch {version} eager; \
         {rounds} alternated rounds of {steps} steps (the median round), after one warm-up round",
        config.k, config.student.hidden, config.student_steps
    );
    for threads in [1, all] {
        tch_round(steps, threads)?;
        pytorch(steps, threads)?;
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            ours.push(tch_round(steps, threads)?);
            theirs.push(pytorch(steps, threads)?);
        }
        let (ours, theirs) = (median(ours), median(theirs));
        let per_s = |r: &Round| steps as f64 / r.total;
        println!(
            "{threads} thread(s): tch {:.1} steps/s, PyTorch {:.1} steps/s; tch/PyTorch step time \
             {:.2}",
            per_s(&ours),
            per_s(&theirs),
            ours.total / theirs.total
        );
        println!("  ms per step   {:>8} {:>8}", "tch", "PyTorch");
        for p in PHASES {
            println!(
                "  {p:<12}  {:>8.3} {:>8.3}",
                1e3 * ours.phases[p] / steps as f64,
                1e3 * theirs.phases[p] / steps as f64
            );
        }
        println!(
            "  {:<12}  {:>8.3} {:>8.3}",
            "step",
            1e3 * ours.total / steps as f64,
            1e3 * theirs.total / steps as f64
        );
    }
    drop(pytorch);
    child.wait()?;
    Ok(())
}

/// The round of median wall-clock time.
fn median(mut rounds: Vec<Round>) -> Round {
    rounds.sort_by(|a, b| a.total.total_cmp(&b.total));
    rounds[rounds.len() / 2].clone()
}
