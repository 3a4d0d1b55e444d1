//! Specialists in one process: learners on their own domains, each serving its trained
//! encoder to the others, plus a noise and a zeros peer; prints each learner's validation
//! per domain (peers, alone, student, zeros) after `STEPS` steps.
//!
//! `cargo run --release -p deepnode-torch --example specialists -- STEPS DOMAIN...`
//! (e.g. `1500 fortunes fortunes python c`). The learners' defaults, with these overrides from
//! the environment: `K` (peers per position), `READOUT=0` (no shared readout),
//! `CONTEXT_GATE=0` (the gate reads one position), `STUDENT_HIDDEN`, `STUDENT_STEPS`,
//! `STUDENT_LR`, `VISITORS`, `SEED`.

use std::sync::Arc;

use deepnode_node::{Constant, Model, Noise, Tensor as NodeTensor, Trainer};
use deepnode_torch::data::Domain;
use deepnode_torch::{EncoderConfig, Learner, LearnerConfig, LocalConfig, ServeConfig, TorchModel};
use deepnode_wire::Modality;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let steps: u64 = args.first().map_or(Ok(1500), |s| s.parse())?;
    let domains: Vec<Domain> = args[1..]
        .iter()
        .map(|d| Domain::parse(d))
        .collect::<Result<_, _>>()?;
    let env = |k: &str, d: f64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let n = domains.len();
    let slots = n + 2;
    let defaults = LearnerConfig::default();
    let readout = env("READOUT", 1.0) > 0.0;
    let mut learners = Vec::new();
    let mut served = Vec::new();
    for (i, &d) in domains.iter().enumerate() {
        let seed = env("SEED", 1.0) as u64 * 1000 + i as u64;
        let config = LearnerConfig {
            local: LocalConfig {
                peers: slots,
                k: env("K", defaults.local.k as f64) as usize,
                seed,
                readout: readout.then_some(deepnode_torch::local::NETWORK_READOUT),
                context_gate: env("CONTEXT_GATE", 1.0) > 0.0,
                student_steps: env("STUDENT_STEPS", f64::from(defaults.local.student_steps)) as u32,
                student_lr: env("STUDENT_LR", defaults.local.student_lr),
                student: EncoderConfig {
                    hidden: env("STUDENT_HIDDEN", defaults.local.student.hidden as f64) as i64,
                    ..defaults.local.student
                },
                ..defaults.local
            },
            visitors: env("VISITORS", defaults.visitors),
            ..defaults
        };
        let mut l = Learner::specialist(config, d, &domains)?;
        let s = Arc::new(TorchModel::new(
            seed as i64,
            EncoderConfig::default(),
            ServeConfig::default(),
        )?);
        l.serve_through(Arc::clone(&s))?;
        learners.push(l);
        served.push(s);
    }
    let noise = Noise::new(5, 32, 1.0);
    let zeros = Constant::new(32, 0.0);
    let start = std::time::Instant::now();
    let mut ticks = 0u64;
    while learners.iter().any(|l| l.progress().steps < steps) {
        ticks += 1;
        for (i, l) in learners.iter_mut().enumerate() {
            let ask = l.ask(i as u32)?;
            let answers: Vec<(u32, Option<NodeTensor>)> = ask
                .uids
                .iter()
                .map(|&j| {
                    let m: &dyn Model = match j as usize {
                        j if j < n => served[j].as_ref(),
                        j if j == n => &noise,
                        _ => &zeros,
                    };
                    (j, m.forward(Modality::Text, &ask.inputs).ok())
                })
                .collect();
            let grads = l.learn(answers)?;
            for (j, g) in grads {
                if (j as usize) < n && j as usize != i {
                    served[j as usize]
                        .backward(Modality::Text, &ask.inputs, &g)
                        .ok();
                }
            }
        }
        if ticks.is_multiple_of(500) {
            eprintln!("tick {ticks}: {:.0} s", start.elapsed().as_secs_f64());
        }
    }
    println!("{:.1} s for {steps} steps", start.elapsed().as_secs_f64());
    for (i, l) in learners.iter().enumerate() {
        let p = l.progress();
        let get = |k: &str| p.valid.iter().find(|(n, _)| n == k).map(|v| v.1);
        println!("learner {i} ({}), steps {}:", domains[i].name(), p.steps);
        let mut seen = Vec::new();
        for &d in &domains {
            if seen.contains(&d) {
                continue;
            }
            seen.push(d);
            let k = |m: &str| get(&format!("{}/{m}", d.name())).unwrap_or(f64::NAN);
            let vals: Vec<String> = p
                .valid
                .iter()
                .filter_map(|(n, v)| {
                    let j = n.strip_prefix(&format!("{}/value/", d.name()))?;
                    Some(format!("{j}={v:.2}"))
                })
                .collect();
            println!("  {:9} value {}", d.name(), vals.join(" "));
            println!(
                "  {:9} peers {:.3} alone {:.3} student {:.3} zeros {:.3} gain {:+.3} [{:+.3}, {:+.3}]",
                d.name(),
                k("peers"),
                k("alone"),
                k("student"),
                k("zeros"),
                k("alone") - k("peers"),
                k("gain_lo"),
                k("gain_hi")
            );
        }
        let values: Vec<String> = p
            .valid
            .iter()
            .filter(|(n, _)| n.starts_with("value/"))
            .map(|(n, v)| format!("{}={v:.3}", &n[6..]))
            .collect();
        println!("  value {}", values.join(" "));
        if let (Some(g), Some(lo), Some(hi)) = (
            get("others/gain"),
            get("others/gain_lo"),
            get("others/gain_hi"),
        ) {
            println!("  others gain {g:+.3} [{lo:+.3}, {hi:+.3}]");
        }
        // The share of the peers' gain on the other domains that the student keeps.
        let own = domains[i].name();
        let (mut kept, mut gain) = (0.0, 0.0);
        let mut others: Vec<&str> = domains.iter().map(|d| d.name()).collect();
        others.sort_unstable();
        others.dedup();
        for d in others.into_iter().filter(|&d| d != own) {
            let k = |m: &str| get(&format!("{d}/{m}")).unwrap_or(f64::NAN);
            kept += k("alone") - k("student");
            gain += k("alone") - k("peers");
        }
        if gain > 0.0 {
            println!("  student keeps {:.0}%", 100.0 * kept / gain);
        }
    }
    Ok(())
}
