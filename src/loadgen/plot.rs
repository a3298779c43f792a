//! `ringftp loadtest plot RUN.json [RUN2.json ...] -o FILE.svg|.png`: one
//! chart of one or more runs (their `--json` reports), drawn with
//! `plotters`:
//! - above, latency over time: p50 (thin), p99 (thick) and max (dashed) of
//!   each second of the run, one colour per run, on a log scale; missed
//!   starts and errors of a second are marked on the time axis;
//! - below, each run's percentile distribution (the `.hgrm` curve): latency
//!   against the percentile, the tail spread out (90 %, 99 %, 99.9 %, ...
//!   equally spaced).
//!
//! SVG or PNG by the output's extension. Text is laid out with a TrueType
//! font found on the system (DejaVu, Liberation, Noto, FreeSans, or any
//! under /usr/share/fonts), or the one `RINGFTP_PLOT_FONT` names.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{bail, Context};
use clap::Args;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::report::Report;

/// Flags of `ringftp loadtest plot`.
#[derive(Args, Debug, Clone)]
pub struct PlotArgs {
    /// JSON reports of runs (`ringftp loadtest --json FILE`).
    #[arg(value_name = "RUN.json", required = true)]
    pub runs: Vec<PathBuf>,

    /// The chart to write: FILE.svg or FILE.png.
    #[arg(short = 'o', long = "output", value_name = "FILE.svg|FILE.png")]
    pub output: PathBuf,

    /// The histogram to draw (request, transfer, first_byte, failed,
    /// request.retr, ...).
    #[arg(long, default_value = "request")]
    pub phase: String,

    /// Size of the chart in pixels, WIDTHxHEIGHT.
    #[arg(long, value_name = "WxH", default_value = "1200x900", value_parser = parse_size_px)]
    pub size: (u32, u32),
}

fn parse_size_px(text: &str) -> Result<(u32, u32), String> {
    let (w, h) = text
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("{text:?}: expected WIDTHxHEIGHT, e.g. 1200x900"))?;
    let px = |s: &str| {
        s.trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (200..=10_000).contains(n))
            .ok_or_else(|| format!("{text:?}: each side between 200 and 10000 pixels"))
    };
    Ok((px(w)?, px(h)?))
}

/// One run's lines, read from its report.
struct Run {
    label: String,
    /// (t_s, p50, p99, max) per second with data, in ms.
    seconds: Vec<(f64, f64, f64, f64)>,
    /// Seconds with missed starts or errors.
    trouble: Vec<f64>,
    /// (nines, ms): the distribution, x = -log10(1 - p).
    distribution: Vec<(f64, f64)>,
}

/// Highest "nines" drawn (99.9999 %).
const MAX_NINES: f64 = 6.0;

impl Run {
    fn load(path: &Path, phase: &str) -> anyhow::Result<Run> {
        let r = Report::read_json(path)?;
        let seconds = r
            .series
            .iter()
            .filter_map(|s| {
                let p = s.phases.get(phase)?;
                Some((s.t_s, p.p50_ms, p.p99_ms, p.max_ms))
            })
            .collect();
        let trouble = r
            .series
            .iter()
            .filter(|s| s.missed > 0 || s.errors > 0)
            .map(|s| s.t_s)
            .collect();
        // The 100 % point (the max) has no finite place on a nines axis: it
        // goes a quarter of a nine after the last finite one.
        let mut distribution: Vec<(f64, f64)> = Vec::new();
        for &[p, ms] in r.distribution.get(phase).map_or(&[][..], Vec::as_slice) {
            let x = if p >= 100.0 {
                distribution.last().map_or(0.0, |l| l.0) + 0.25
            } else {
                -(1.0 - p / 100.0).log10()
            };
            distribution.push((x.min(MAX_NINES), ms));
        }
        let stem = path.file_stem().map_or_else(
            || path.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        );
        Ok(Run {
            label: format!("{stem} ({})", r.scenario),
            seconds,
            trouble,
            distribution,
        })
    }
}

/// Runs `ringftp loadtest plot`.
pub(crate) fn run(args: &PlotArgs) -> anyhow::Result<()> {
    let runs = args
        .runs
        .iter()
        .map(|p| Run::load(p, &args.phase))
        .collect::<anyhow::Result<Vec<Run>>>()?;
    if runs
        .iter()
        .all(|r| r.seconds.is_empty() && r.distribution.is_empty())
    {
        bail!(
            "no `{}` latencies in {}: nothing to plot (see `phases` in the reports for the names)",
            args.phase,
            args.runs
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    register_font()?;
    let out = &args.output;
    let ext = out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let drawn = match ext.as_deref() {
        Some("svg") => draw(
            SVGBackend::new(out, args.size).into_drawing_area(),
            &runs,
            &args.phase,
        ),
        Some("png") => draw(
            BitMapBackend::new(out, args.size).into_drawing_area(),
            &runs,
            &args.phase,
        ),
        _ => bail!("-o {}: the chart is .svg or .png", out.display()),
    };
    drawn.with_context(|| format!("drawing {}", out.display()))?;
    eprintln!("loadtest plot: wrote {}", out.display());
    Ok(())
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    runs: &[Run],
    phase: &str,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow::anyhow!("{e}");
    root.fill(&WHITE).map_err(err)?;
    let (top, bottom) = root.split_vertically(root.dim_in_pixel().1 / 2);

    let all_ms = runs
        .iter()
        .flat_map(|r| {
            r.seconds
                .iter()
                .flat_map(|s| [s.1, s.2, s.3])
                .chain(r.distribution.iter().map(|d| d.1))
        })
        .filter(|v| *v > 0.0);
    let (lo, hi) = all_ms.fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if lo > hi {
        (0.001, 1.0)
    } else {
        (lo / 1.5, hi * 1.5)
    };
    let t_max = runs
        .iter()
        .flat_map(|r| r.seconds.iter().map(|s| s.0 + 1.0))
        .fold(1.0f64, f64::max);

    let mut chart = ChartBuilder::on(&top)
        .caption(format!("{phase} latency over time"), ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..t_max, (lo..hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("seconds from the start")
        .y_desc("ms (log)")
        .draw()
        .map_err(err)?;
    for (i, r) in runs.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let mid = |s: &(f64, f64, f64, f64)| s.0 + 0.5;
        chart
            .draw_series(LineSeries::new(
                r.seconds.iter().map(|s| (mid(s), s.1)),
                color.stroke_width(1),
            ))
            .map_err(err)?
            .label(format!("{} p50", r.label))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(1))
            });
        chart
            .draw_series(LineSeries::new(
                r.seconds.iter().map(|s| (mid(s), s.2)),
                color.stroke_width(3),
            ))
            .map_err(err)?
            .label(format!("{} p99", r.label))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
            });
        chart
            .draw_series(DashedLineSeries::new(
                r.seconds.iter().map(|s| (mid(s), s.3)),
                6,
                4,
                color.stroke_width(1),
            ))
            .map_err(err)?
            .label(format!("{} max", r.label))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 6, y), (x + 12, y)], color.stroke_width(1))
            });
        // Seconds with missed starts or errors: a mark on the time axis.
        chart
            .draw_series(
                r.trouble
                    .iter()
                    .map(|&t| TriangleMarker::new((t + 0.5, lo * 1.2), 6, color.filled())),
            )
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;

    let n_max = runs
        .iter()
        .flat_map(|r| r.distribution.iter().map(|d| d.0))
        .fold(2.0f64, f64::max)
        .min(MAX_NINES);
    let mut dist = ChartBuilder::on(&bottom)
        .caption(format!("{phase} latency by percentile"), ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..n_max + 0.2, (lo..hi).log_scale())
        .map_err(err)?;
    dist.configure_mesh()
        .x_desc("percentile")
        .x_labels(n_max as usize + 2)
        .y_desc("ms (log)")
        .x_label_formatter(&|x| percentile_label(*x))
        .draw()
        .map_err(err)?;
    for (i, r) in runs.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        dist.draw_series(LineSeries::new(
            r.distribution.iter().copied(),
            color.stroke_width(2),
        ))
        .map_err(err)?
        .label(r.label.clone())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    dist.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// `x` nines as a percentile: 0 → 0%, 1 → 90%, 2 → 99%, 2.5 → 99.68%.
fn percentile_label(x: f64) -> String {
    let p = 100.0 - 100.0 / 10f64.powf(x);
    let digits = (x.ceil() as usize).saturating_sub(2).min(6);
    format!("{p:.digits$}%")
}

/// Registers a TrueType font as "sans-serif" for the chart's text (once).
fn register_font() -> anyhow::Result<()> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let path = find_font().ok_or_else(|| {
            "no TrueType font found for the chart's text (looked in /usr/share/fonts and \
             /usr/local/share/fonts): install one (Debian: fonts-dejavu-core) or set \
             RINGFTP_PLOT_FONT=/path/to/font.ttf"
                .to_string()
        })?;
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            Box::leak(bytes.into_boxed_slice()),
        )
        .map_err(|_| format!("{}: not a usable TrueType font", path.display()))
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

fn find_font() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("RINGFTP_PLOT_FONT") {
        return Some(PathBuf::from(p));
    }
    const KNOWN: [&str; 7] = [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
        "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
        "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    ];
    if let Some(p) = KNOWN.iter().map(PathBuf::from).find(|p| p.is_file()) {
        return Some(p);
    }
    let mut dirs = vec![
        (PathBuf::from("/usr/share/fonts"), 0),
        (PathBuf::from("/usr/local/share/fonts"), 0),
    ];
    while let Some((dir, depth)) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            if p.is_dir() && depth < 4 {
                dirs.push((p, depth + 1));
            } else if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("ttf")) {
                return Some(p);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_labels() {
        assert_eq!(percentile_label(0.0), "0%");
        assert_eq!(percentile_label(1.0), "90%");
        assert_eq!(percentile_label(2.0), "99%");
        assert_eq!(percentile_label(3.0), "99.9%");
        assert_eq!(percentile_label(4.0), "99.99%");
    }

    #[test]
    fn sizes_in_pixels() {
        assert_eq!(parse_size_px("800x600"), Ok((800, 600)));
        assert!(parse_size_px("800").is_err());
        assert!(parse_size_px("1x1").is_err());
    }
}
