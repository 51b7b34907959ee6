//! The benchmark's results: a table for people, JSON for machines.

use std::time::Duration;

use serde::Serialize;

use super::BenchArgs;

/// One measured figure.
#[derive(Serialize)]
pub struct Figure {
    name: String,
    value: f64,
    unit: &'static str,
    /// Throughput figures as a fraction of the ceiling measured in the same run.
    #[serde(skip_serializing_if = "Option::is_none")]
    ratio_to_ceiling: Option<f64>,
    /// The ceiling this figure is compared with (in its own unit), when not the run's: a plain
    /// client measured with as many requests in flight as the scenario had.
    #[serde(skip_serializing_if = "Option::is_none")]
    ceiling: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_ms: Option<Latency>,
}

#[derive(Serialize)]
struct Latency {
    p50: f64,
    p99: f64,
    max: f64,
    samples: usize,
}

impl Figure {
    /// A rate, later compared with the ceiling.
    pub fn rate(name: &str, value: f64, unit: &'static str) -> Self {
        Self {
            name: name.to_owned(),
            value,
            unit,
            ratio_to_ceiling: None,
            ceiling: None,
            latency_ms: None,
        }
    }

    /// Latency percentiles of sorted samples.
    pub fn latency(name: &str, sorted: &[Duration]) -> Self {
        let at = |q: f64| {
            sorted
                .get(((sorted.len() as f64 * q).ceil() as usize).saturating_sub(1))
                .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
        };
        Self {
            name: name.to_owned(),
            value: at(0.99),
            unit: "ms p99",
            ratio_to_ceiling: None,
            ceiling: None,
            latency_ms: Some(Latency {
                p50: at(0.5),
                p99: at(0.99),
                max: sorted.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0),
                samples: sorted.len(),
            }),
        }
    }

    /// Microseconds of the process's CPU time per request or delivery, later compared with
    /// the ceiling's the other way round (less is better).
    pub fn cpu(name: &str, us: f64) -> Self {
        Self {
            name: name.to_owned(),
            value: us,
            unit: CPU_UNIT,
            ratio_to_ceiling: None,
            ceiling: None,
            latency_ms: None,
        }
    }

    /// The figure compared with `ceiling` (a rate or a CPU cost, as the figure is) instead of
    /// the run's ceiling.
    pub fn against(mut self, ceiling: f64) -> Self {
        self.ceiling = Some(ceiling);
        self
    }

    /// A memory figure in bytes.
    pub fn memory(name: &str, bytes: u64) -> Self {
        Self {
            name: name.to_owned(),
            value: bytes as f64 / (1024.0 * 1024.0),
            unit: "MiB",
            ratio_to_ceiling: None,
            ceiling: None,
            latency_ms: None,
        }
    }
}

/// Characters the table gives a figure's name.
const NAME_WIDTH: usize = 72;

/// The unit of [`Figure::cpu`].
const CPU_UNIT: &str = "µs CPU";

/// Every figure of a run.
#[derive(Serialize)]
pub struct Report {
    machine: String,
    backend: String,
    nodes: usize,
    /// How long the receiver waited before answering each request (`--receiver-latency-ms`).
    receiver_latency_ms: u64,
    ceiling_posts_per_s: f64,
    /// The process's CPU time per ceiling request, in microseconds.
    ceiling_cpu_us: f64,
    figures: Vec<Figure>,
}

impl Report {
    /// An empty report for a run with these arguments.
    pub fn new(args: &BenchArgs) -> Self {
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        let model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
            .unwrap_or_default();
        Self {
            machine: format!("{cpus} CPUs, {model}"),
            backend: if args.database_url.is_some() {
                "postgres"
            } else {
                "sqlite"
            }
            .to_owned(),
            nodes: args.nodes.max(1),
            receiver_latency_ms: args.receiver_latency_ms,
            ceiling_posts_per_s: 0.0,
            ceiling_cpu_us: f64::NAN,
            figures: Vec::new(),
        }
    }

    /// The ceiling every rate is compared with, and its CPU cost per request, which every CPU
    /// cost is compared with.
    pub fn set_ceiling(&mut self, posts_per_s: f64, cpu_us: f64) {
        self.ceiling_posts_per_s = posts_per_s;
        self.ceiling_cpu_us = cpu_us;
    }

    /// Adds a figure; its ratio to the ceiling is worked out when the report is printed, since
    /// the ceiling is measured again after the scenarios.
    pub fn push(&mut self, figure: Figure) {
        self.figures.push(figure);
    }

    /// Gives each rate and each CPU cost its ratio to the ceiling (for a cost the ceiling's is
    /// divided by the figure's, so that higher is better for both).
    fn compare_with_ceiling(&mut self) {
        for figure in &mut self.figures {
            let rate_ceiling = figure.ceiling.unwrap_or(self.ceiling_posts_per_s);
            if figure.unit.ends_with("/s") && rate_ceiling > 0.0 {
                figure.ratio_to_ceiling = Some(figure.value / rate_ceiling);
            }
            if figure.unit == CPU_UNIT && figure.value > 0.0 {
                let cpu_ceiling = figure.ceiling.unwrap_or(self.ceiling_cpu_us);
                figure.ratio_to_ceiling = Some(cpu_ceiling / figure.value);
            }
        }
    }

    /// Prints the report.
    pub fn print(mut self, json: bool) {
        self.compare_with_ceiling();
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(&self).expect("a report serializes")
            );
            return;
        }
        println!(
            "machine: {}; backend: {} ({} node(s)); receiver answers after {} ms",
            self.machine, self.backend, self.nodes, self.receiver_latency_ms
        );
        println!(
            "{:<NAME_WIDTH$} {:>12}  {:<14} {:>8}",
            "figure", "value", "unit", "ceiling"
        );
        println!(
            "{:<NAME_WIDTH$} {:>12.0}  {:<14} {:>8}",
            "ceiling: receiver driven by a plain client",
            self.ceiling_posts_per_s,
            "POST/s",
            "1.00"
        );
        println!(
            "{:<NAME_WIDTH$} {:>12.1}  {:<14} {:>8}",
            "ceiling (µs CPU each)", self.ceiling_cpu_us, CPU_UNIT, "1.00"
        );
        for f in &self.figures {
            let ratio = f
                .ratio_to_ceiling
                .map_or(String::new(), |r| format!("{r:.2}"));
            match &f.latency_ms {
                Some(l) => println!(
                    "{:<NAME_WIDTH$} {:>12}  {:<14} {:>8}",
                    f.name,
                    format!("{:.1}/{:.1}/{:.1}", l.p50, l.p99, l.max),
                    "ms p50/p99/max",
                    ""
                ),
                None if f.unit == CPU_UNIT => println!(
                    "{:<NAME_WIDTH$} {:>12.1}  {:<14} {:>8}",
                    f.name, f.value, f.unit, ratio
                ),
                None => println!(
                    "{:<NAME_WIDTH$} {:>12.0}  {:<14} {:>8}",
                    f.name, f.value, f.unit, ratio
                ),
            }
        }
    }
}
