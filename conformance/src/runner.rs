//! Reads vector files (conformance/SPEC.md §8) and checks both backends against them.

use std::fmt;
use std::path::{Path, PathBuf};

use deepnode_consensus::{EpochOutput, Error, Fx, State, epoch};
use serde_json::Value;

use deepnode_consensus::Scalar;
use deepnode_contract::parse_state;

/// Why the runner could not run (as opposed to a vector failing).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunnerError {
    /// The directory or a file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The directory holds no `.json` vector.
    #[error("{0}: no vectors found")]
    Empty(PathBuf),
}

/// What happened to one vector.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Every check held; the names of the checks run (`fixed`, `float`, `error`).
    Pass(Vec<&'static str>),
    /// A check failed: the first difference, as a readable diff line.
    Fail(String),
    /// Not run, and why.
    Skipped(String),
}

/// One vector's result.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The vector's `id` (or its file name when it has none).
    pub id: String,
    /// The file.
    pub path: PathBuf,
    /// The outcome.
    pub outcome: Outcome,
}

/// The results of a directory, in file-name order.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// One entry per vector file.
    pub cases: Vec<CaseResult>,
}

impl Report {
    /// Vectors that passed.
    pub fn passed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Pass(_)))
    }
    /// Vectors that failed.
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Fail(_)))
    }
    /// Vectors skipped.
    pub fn skipped(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Skipped(_)))
    }
    /// Whether no vector failed or was skipped.
    pub fn all_passed(&self) -> bool {
        self.failed() == 0 && self.skipped() == 0 && !self.cases.is_empty()
    }
    fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.cases.iter().filter(|c| f(&c.outcome)).count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.cases {
            match &c.outcome {
                Outcome::Pass(checks) => writeln!(f, "ok      {} ({})", c.id, checks.join(", "))?,
                Outcome::Fail(why) => writeln!(f, "FAILED  {}: {why}", c.id)?,
                Outcome::Skipped(why) => writeln!(f, "skipped {}: {why}", c.id)?,
            }
        }
        write!(
            f,
            "conformance: {} passed, {} failed, {} skipped",
            self.passed(),
            self.failed(),
            self.skipped()
        )
    }
}

/// Runs every `*.json` under `dir` (recursively, sorted by path).
pub fn run_dir(dir: &Path) -> Result<Report, RunnerError> {
    let mut files = Vec::new();
    collect(dir, &mut files)?;
    files.sort();
    if files.is_empty() {
        return Err(RunnerError::Empty(dir.to_path_buf()));
    }
    let cases = files
        .iter()
        .map(|p| run_file(p))
        .collect::<Result<_, _>>()?;
    Ok(Report { cases })
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), RunnerError> {
    let io = |source| RunnerError::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    Ok(())
}

/// Runs one vector file.
pub fn run_file(path: &Path) -> Result<CaseResult, RunnerError> {
    let text = std::fs::read_to_string(path).map_err(|source| RunnerError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let fallback = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (id, outcome) = match serde_json::from_str::<Value>(&text) {
        Err(e) => (fallback, Outcome::Fail(format!("not JSON: {e}"))),
        Ok(v) => {
            let id = v["id"].as_str().map_or(fallback, str::to_owned);
            (id, check_vector(&v))
        }
    };
    Ok(CaseResult {
        id,
        path: path.to_path_buf(),
        outcome,
    })
}

fn check_vector(v: &Value) -> Outcome {
    let input = v["input"].to_string();
    let expected = &v["expected"];
    if let Some(want) = expected["error"].as_str() {
        return match (run::<Fx>(&input, 1, ONE), run::<f64>(&input, 1, ONE)) {
            (Err(a), Err(b)) if a == want && b == want => {
                for threads in THREADS {
                    for got in [
                        run::<Fx>(&input, 1, threads).err(),
                        run::<f64>(&input, 1, threads).err(),
                    ] {
                        if got.as_deref() != Some(want) {
                            return Outcome::Fail(format!(
                                "expected error {want}, got on {threads:?} threads: {}",
                                got.unwrap_or_else(|| "no error".into())
                            ));
                        }
                    }
                }
                Outcome::Pass(vec![if THREADS.len() > 1 {
                    "error, parallel"
                } else {
                    "error"
                }])
            }
            (a, b) => Outcome::Fail(format!(
                "expected error {want}, got fixed: {}, float: {}",
                a.err().unwrap_or_else(|| "no error".into()),
                b.err().unwrap_or_else(|| "no error".into())
            )),
        };
    }
    let epochs = v["epochs"].as_u64().unwrap_or(1);
    let by_epoch = v["weights_by_epoch"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    if let Some(points) = expected["published"].as_array() {
        return check_published(&input, epochs, by_epoch, points, expected);
    }
    let mut checks = Vec::new();
    match expected["fixed"].as_array() {
        None => return Outcome::Skipped("no fixed expectations".into()),
        Some(want) => {
            for threads in THREADS {
                let what = if threads == ONE {
                    "fixed"
                } else {
                    "fixed parallel"
                };
                match run_with::<Fx>(&input, epochs, threads, by_epoch) {
                    Err(e) => return Outcome::Fail(format!("{what}: unexpected error {e}")),
                    Ok(got) => {
                        if let Err(diff) = compare(&got, want, &Tolerance::Exact) {
                            return Outcome::Fail(format!("{what} ({threads:?} threads): {diff}"));
                        }
                    }
                }
                if !checks.contains(&what) {
                    checks.push(what);
                }
            }
        }
    }
    match expected["float"].as_array() {
        None => return Outcome::Skipped("no float expectations".into()),
        Some(want) => {
            let tol = Tolerance::Within {
                real: expected["float_tolerance"].as_f64().unwrap_or(1e-9),
                units: expected["units_tolerance"].as_u64().unwrap_or(1),
            };
            for threads in THREADS {
                let what = if threads == ONE {
                    "float"
                } else {
                    "float parallel"
                };
                match run_with::<f64>(&input, epochs, threads, by_epoch) {
                    Err(e) => return Outcome::Fail(format!("{what}: unexpected error {e}")),
                    Ok(got) => {
                        if let Err(diff) = compare(&got, want, &tol) {
                            return Outcome::Fail(format!("{what} ({threads:?} threads): {diff}"));
                        }
                    }
                }
                if !checks.contains(&what) {
                    checks.push(what);
                }
            }
        }
    }
    Outcome::Pass(checks)
}

/// A vector with published expectations (SPEC.md §8): points `{"epoch": e, "dividends":
/// [x], "bonds": [[i, j, x]], "bonds_u16": [[i, j, u]]}` (each key optional), checked on
/// both backends within `tolerance` (reals) and `u16_tolerance` (steps of 1/65535).
fn check_published(
    input: &str,
    epochs: u64,
    by_epoch: &[Value],
    points: &[Value],
    expected: &Value,
) -> Outcome {
    let tol = expected["tolerance"].as_f64().unwrap_or(0.0);
    let steps = expected["u16_tolerance"].as_u64().unwrap_or(0);
    let mut checks = Vec::new();
    for threads in THREADS {
        let fixed = run_with::<Fx>(input, epochs, threads, by_epoch)
            .map_err(|e| format!("fixed: unexpected error {e}"))
            .and_then(|got| published(&got, points, tol, steps).map_err(|d| format!("fixed: {d}")));
        let float = run_with::<f64>(input, epochs, threads, by_epoch)
            .map_err(|e| format!("float: unexpected error {e}"))
            .and_then(|got| published(&got, points, tol, steps).map_err(|d| format!("float: {d}")));
        if let Err(d) = fixed.and(float) {
            return Outcome::Fail(format!("({threads:?} threads) {d}"));
        }
        let what = if threads == ONE {
            "published"
        } else {
            "published parallel"
        };
        if !checks.contains(&what) {
            checks.push(what);
        }
    }
    Outcome::Pass(checks)
}

/// Checks the published points against the epochs run.
fn published<N: Scalar>(
    got: &[EpochOutput<N>],
    points: &[Value],
    tol: f64,
    steps: u64,
) -> Result<(), String> {
    for p in points {
        let e = p["epoch"].as_u64().ok_or("a point without its epoch")?;
        let g = usize::try_from(e)
            .ok()
            .and_then(|e| got.get(e))
            .ok_or_else(|| format!("epoch {e} not run"))?;
        let bond = |i: u64, j: u64| -> Option<N> {
            let row = g.bonds.get(usize::try_from(i).ok()?)?;
            Some(
                row.iter()
                    .find(|&&(u, _)| u64::from(u) == j)
                    .map_or(N::ZERO, |&(_, b)| b),
            )
        };
        for (k, want) in p["dividends"].as_array().into_iter().flatten().enumerate() {
            let want = want.as_f64().ok_or("a dividend is not a number")?;
            let x = g.dividends.get(k).ok_or("too many dividends")?.to_f64();
            if (x - want).abs() > tol {
                return Err(format!(
                    "epoch {e}: dividends[{k}]: published {want}, got {x}"
                ));
            }
        }
        for entry in p["bonds"].as_array().into_iter().flatten() {
            let (i, j, want) = (entry[0].as_u64(), entry[1].as_u64(), entry[2].as_f64());
            let (Some(i), Some(j), Some(want)) = (i, j, want) else {
                return Err(format!("epoch {e}: a bond point is not [i, j, x]"));
            };
            let x = bond(i, j).ok_or("a bond point out of range")?.to_f64();
            if (x - want).abs() > tol {
                return Err(format!(
                    "epoch {e}: bond ({i}, {j}): published {want}, got {x}"
                ));
            }
        }
        for entry in p["bonds_u16"].as_array().into_iter().flatten() {
            let (i, j, want) = (entry[0].as_u64(), entry[1].as_u64(), entry[2].as_u64());
            let (Some(i), Some(j), Some(want)) = (i, j, want) else {
                return Err(format!("epoch {e}: a bond point is not [i, j, u16]"));
            };
            let x = bond(i, j)
                .ok_or("a bond point out of range")?
                .of_units(65_535);
            if x.abs_diff(want) > steps {
                return Err(format!(
                    "epoch {e}: bond ({i}, {j}): published {want}/65535, got {x}"
                ));
            }
        }
    }
    Ok(())
}

/// How an epoch is run: `None` by `epoch` on one core, `Some(t)` by `Parallel` on `t`
/// threads (feature `parallel`).
type Threads = Option<usize>;

/// The one-core epoch.
const ONE: Threads = None;

/// Every way a vector is run: one core; with the feature `parallel` also 1, 2, 3 and 8
/// threads (the fixed path must give the vector's bits on each).
#[cfg(not(feature = "parallel"))]
const THREADS: [Threads; 1] = [ONE];
#[cfg(feature = "parallel")]
const THREADS: [Threads; 5] = [ONE, Some(1), Some(2), Some(3), Some(8)];

/// Runs `epochs` chained epochs; an error is reported by its variant name.
fn run<N: Scalar + Send + Sync>(
    input: &str,
    epochs: u64,
    threads: Threads,
) -> Result<Vec<EpochOutput<N>>, String> {
    run_with(input, epochs, threads, &[])
}

/// [`run`] where epoch `e` first takes the weights `weights_by_epoch[e]` when that is a
/// matrix (SPEC.md §8: `null` or a missing entry keeps the weights of the epoch before).
fn run_with<N: Scalar + Send + Sync>(
    input: &str,
    epochs: u64,
    threads: Threads,
    weights_by_epoch: &[Value],
) -> Result<Vec<EpochOutput<N>>, String> {
    let mut state: State<N> = parse_state(input).map_err(|e| format!("contract: {e}"))?;
    let mut outs = Vec::new();
    #[cfg(feature = "parallel")]
    let mut runner = threads
        .and_then(std::num::NonZeroUsize::new)
        .map(deepnode_consensus::Parallel::new);
    #[cfg(not(feature = "parallel"))]
    let _ = threads;
    for e in 0..epochs {
        if let Some(w) = usize::try_from(e)
            .ok()
            .and_then(|e| weights_by_epoch.get(e))
            .filter(|w| !w.is_null())
        {
            state.weights = serde_json::from_value(w.clone())
                .map_err(|err| format!("weights_by_epoch[{e}]: {err}"))?;
        }
        #[cfg(feature = "parallel")]
        let out = match &mut runner {
            Some(p) => p.epoch(&state),
            None => epoch(&state),
        };
        #[cfg(not(feature = "parallel"))]
        let out = epoch(&state);
        let out = out.map_err(|e| variant(&e))?;
        state.stake = out.stake.clone();
        state.bonds = out.bonds.clone();
        // SPEC.md §8: the next epoch runs one block later, `last_update` unchanged.
        state.block = state.block.saturating_add(1);
        outs.push(out);
    }
    Ok(outs)
}

/// The variant name of an error, as vectors spell it.
fn variant(e: &Error) -> String {
    let debug = format!("{e:?}");
    debug
        .split([' ', '{', '('])
        .next()
        .unwrap_or_default()
        .to_owned()
}

enum Tolerance {
    Exact,
    Within { real: f64, units: u64 },
}

fn compare<N: Scalar>(
    got: &[EpochOutput<N>],
    want: &[Value],
    tol: &Tolerance,
) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{} epochs expected, {} run", want.len(), got.len()));
    }
    for (e, (g, w)) in got.iter().zip(want).enumerate() {
        let at = |field: &str| format!("epoch {e}: {field}");
        let reals = [
            ("rank", &g.rank),
            ("trust", &g.trust),
            ("consensus", &g.consensus),
            ("incentive", &g.incentive),
            ("dividends", &g.dividends),
        ];
        for (name, values) in reals {
            let list = w[name]
                .as_array()
                .ok_or_else(|| at(&format!("{name} missing")))?;
            if list.len() != values.len() {
                return Err(at(&format!(
                    "{name}: {} values expected, {} produced",
                    list.len(),
                    values.len()
                )));
            }
            for (k, (x, want)) in values.iter().zip(list).enumerate() {
                real_eq(*x, want, tol).map_err(|d| at(&format!("{name}[{k}]: {d}")))?;
            }
        }
        real_eq(g.loss, &w["loss"], tol).map_err(|d| at(&format!("loss: {d}")))?;
        let slack = match tol {
            Tolerance::Exact => 0,
            Tolerance::Within { units, .. } => units.saturating_mul(e as u64 + 1),
        };
        for (name, values) in [("minted", &g.minted), ("stake", &g.stake)] {
            let list = w[name]
                .as_array()
                .ok_or_else(|| at(&format!("{name} missing")))?;
            if list.len() != values.len() {
                return Err(at(&format!(
                    "{name}: length {} expected, {} produced",
                    list.len(),
                    values.len()
                )));
            }
            for (k, (&x, want)) in values.iter().zip(list).enumerate() {
                let want = want
                    .as_u64()
                    .ok_or_else(|| at(&format!("{name}[{k}] not a u64")))?;
                if x.abs_diff(want) > slack {
                    return Err(at(&format!("{name}[{k}]: expected {want}, got {x}")));
                }
            }
        }
        let rows = w["bonds"].as_array().ok_or_else(|| at("bonds missing"))?;
        if rows.len() != g.bonds.len() {
            return Err(at(&format!(
                "bonds: {} rows expected, {} produced",
                rows.len(),
                g.bonds.len()
            )));
        }
        for (i, (row, want)) in g.bonds.iter().zip(rows).enumerate() {
            let want = want
                .as_array()
                .ok_or_else(|| at(&format!("bonds[{i}] not a row")))?;
            if want.len() != row.len() {
                return Err(at(&format!(
                    "bonds[{i}]: {} entries expected, {} produced",
                    want.len(),
                    row.len()
                )));
            }
            for (&(u, v), entry) in row.iter().zip(want) {
                let wu = entry[0].as_u64();
                if wu != Some(u64::from(u)) {
                    return Err(at(&format!("bonds[{i}]: uid {wu:?} expected, got {u}")));
                }
                real_eq(v, &entry[1], tol).map_err(|d| at(&format!("bonds[{i}][uid {u}]: {d}")))?;
            }
        }
    }
    Ok(())
}

fn real_eq<N: Scalar>(got: N, want: &Value, tol: &Tolerance) -> Result<(), String> {
    match tol {
        Tolerance::Exact => {
            let want = want.as_str().ok_or("expected bits as a string")?;
            let got = got.fixed_bits().map(|b| b.to_string()).unwrap_or_default();
            if got == want {
                Ok(())
            } else {
                Err(format!("expected bits {want}, got {got}"))
            }
        }
        Tolerance::Within { real, .. } => {
            let want = want.as_f64().ok_or("expected a number")?;
            let got = got.to_f64();
            if (got - want).abs() <= *real {
                Ok(())
            } else {
                Err(format!(
                    "expected {want:e}, got {got:e} (|diff| {:e} > {real:e})",
                    (got - want).abs()
                ))
            }
        }
    }
}
