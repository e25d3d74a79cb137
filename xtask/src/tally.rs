//! What `cargo xtask test` ran: each step's outcome and time, and the tests it
//! counted, passed, failed and ignored (with the reason each ignored test
//! gives), summed up at the end.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

/// How one step ended.
enum Outcome {
    Ok,
    Failed(String),
    /// The step could not be run here (a tool missing that set-up could not
    /// install): not a pass.
    NotRun(String),
}

/// One step of the run.
struct Step {
    name: String,
    outcome: Outcome,
    seconds: f64,
    passed: u64,
    failed: u64,
    ignored: u64,
    /// What the step says besides its test counts (libFuzzer's runs).
    note: Option<String>,
}

/// Every step run so far.
#[derive(Default)]
pub(crate) struct Tally {
    steps: Vec<Step>,
    /// Ignored tests: `name: reason`.
    ignored: Vec<String>,
}

impl Tally {
    /// Runs one check, passing its output through and adding up the `cargo
    /// test` result lines it prints.
    pub(crate) fn step(&mut self, name: &str, cmd: &mut Command) {
        self.run(name, cmd, false);
    }

    /// As [`Tally::step`], for a libFuzzer run: its standard error is read
    /// too (and passed through), for the count of inputs it ran.
    pub(crate) fn fuzz_step(&mut self, name: &str, cmd: &mut Command) {
        self.run(name, cmd, true);
    }

    /// Records a step that could not run, and says so loudly.
    pub(crate) fn not_run(&mut self, name: &str, why: &str) {
        eprintln!("\n==> {name}: NOT RUN: {why}");
        self.steps.push(Step {
            name: name.to_string(),
            outcome: Outcome::NotRun(why.to_string()),
            seconds: 0.0,
            passed: 0,
            failed: 0,
            ignored: 0,
            note: None,
        });
    }

    fn run(&mut self, name: &str, cmd: &mut Command, read_stderr: bool) {
        eprintln!("\n==> {name}");
        let t = Instant::now();
        let mut step = Step {
            name: name.to_string(),
            outcome: Outcome::Ok,
            seconds: 0.0,
            passed: 0,
            failed: 0,
            ignored: 0,
            note: None,
        };
        cmd.stdout(Stdio::piped());
        if read_stderr {
            cmd.stderr(Stdio::piped());
        }
        let status = cmd.spawn().and_then(|mut child| {
            let stderr = child.stderr.take().map(|e| {
                std::thread::spawn(move || {
                    let mut runs = None;
                    for line in BufReader::new(e).lines().map_while(Result::ok) {
                        let _ = writeln!(std::io::stderr(), "{line}");
                        if let Some(n) = fuzz_runs(&line) {
                            runs = Some(n);
                        }
                    }
                    runs
                })
            });
            let stdout = child.stdout.take().expect("stdout was piped");
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("{line}");
                if let Some(result) = line.strip_prefix("test result: ") {
                    step.passed += count(result, " passed");
                    step.failed += count(result, " failed");
                    step.ignored += count(result, " ignored");
                } else if let Some(why) = ignored_test(&line) {
                    self.ignored.push(why);
                }
            }
            if let Some(Ok(Some(runs))) = stderr.map(|h| h.join()) {
                step.note = Some(format!("{runs} inputs"));
            }
            child.wait()
        });
        step.seconds = t.elapsed().as_secs_f64();
        match status {
            Ok(s) if s.success() => eprintln!("==> {name}: ok ({:.1} s)", step.seconds),
            Ok(s) => {
                eprintln!("==> {name}: FAILED ({s}, {:.1} s)", step.seconds);
                step.outcome = Outcome::Failed(s.to_string());
            }
            Err(e) => {
                eprintln!("==> {name}: could not start: {e}");
                step.outcome = Outcome::Failed(format!("could not start: {e}"));
            }
        }
        self.steps.push(step);
    }

    /// Prints every step with its time and counts, the ignored tests with
    /// their reasons, and the summary line CI reads; returns what failed or
    /// did not run.
    pub(crate) fn finish(&self) -> Result<(), String> {
        let out = &mut std::io::stderr();
        let _ = writeln!(out, "\nsteps:");
        for s in &self.steps {
            let status = match &s.outcome {
                Outcome::Ok => "ok".to_string(),
                Outcome::Failed(why) => format!("FAILED ({why})"),
                Outcome::NotRun(_) => "NOT RUN".to_string(),
            };
            let mut counts = String::new();
            if s.passed + s.failed + s.ignored != 0 {
                counts = format!("{} passed, {} failed", s.passed, s.failed);
                if s.ignored != 0 {
                    counts.push_str(&format!(", {} ignored", s.ignored));
                }
            }
            if let Some(note) = &s.note {
                counts = note.clone();
            }
            if let Outcome::NotRun(why) = &s.outcome {
                counts = why.clone();
            }
            let _ = writeln!(
                out,
                "  {:<36} {:<8} {:>7.1} s  {counts}",
                s.name, status, s.seconds
            );
        }
        for why in &self.ignored {
            let _ = writeln!(out, "  ignored: {why}");
        }
        let total = |f: fn(&Step) -> u64| self.steps.iter().map(f).sum::<u64>();
        let (passed, failed, ignored) = (
            total(|s| s.passed),
            total(|s| s.failed),
            total(|s| s.ignored),
        );
        // The summary line CI reads: every test of every step.
        println!("tests: {passed} passed, {failed} failed, {ignored} ignored");
        let mut bad: Vec<String> = Vec::new();
        for s in &self.steps {
            match &s.outcome {
                Outcome::Ok => {}
                Outcome::Failed(_) => bad.push(s.name.clone()),
                Outcome::NotRun(_) => bad.push(format!("{} (NOT RUN)", s.name)),
            }
        }
        if passed == 0 {
            bad.push("no test ran".into());
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(format!("failed: {}", bad.join(", ")))
        }
    }
}

/// The number before `label` in a `cargo test` result line
/// (`ok. 5 passed; 0 failed; ...`).
fn count(result: &str, label: &str) -> u64 {
    result
        .split(';')
        .find_map(|part| part.trim_end().strip_suffix(label))
        .and_then(|n| n.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// `name: reason` from the line libtest prints for an ignored test
/// (`test name ... ignored, reason`; no reason given: `test name ... ignored`).
fn ignored_test(line: &str) -> Option<String> {
    let (name, rest) = line.strip_prefix("test ")?.split_once(" ... ")?;
    let reason = rest.strip_prefix("ignored")?;
    let reason = reason.strip_prefix(", ").unwrap_or("no reason given");
    Some(format!("{name}: {reason}"))
}

/// The inputs libFuzzer ran, from its last line (`Done 123 runs in 20 second(s)`).
fn fuzz_runs(line: &str) -> Option<u64> {
    line.strip_prefix("Done ")?.split(' ').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_cargo_test_result_lines() {
        let line =
            "ok. 5 passed; 2 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.58s";
        assert_eq!(count(line, " passed"), 5);
        assert_eq!(count(line, " failed"), 2);
        assert_eq!(count(line, " ignored"), 1);
        assert_eq!(count("FAILED. 0 passed; 3 failed; 0 ignored", " failed"), 3);
    }

    #[test]
    fn reads_ignored_tests_with_and_without_a_reason() {
        assert_eq!(
            ignored_test("test rpmsg_lite_interop ... ignored, no bindings: set X").as_deref(),
            Some("rpmsg_lite_interop: no bindings: set X")
        );
        assert_eq!(
            ignored_test("test a::b ... ignored").as_deref(),
            Some("a::b: no reason given")
        );
        assert_eq!(ignored_test("test a::b ... ok"), None);
        assert_eq!(ignored_test("running 3 tests"), None);
    }

    #[test]
    fn reads_libfuzzers_run_count() {
        assert_eq!(fuzz_runs("Done 123456 runs in 21 second(s)"), Some(123456));
        assert_eq!(fuzz_runs("#1024 pulse cov: 12"), None);
    }
}
