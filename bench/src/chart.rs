//! The PNG chart: one bar panel per figure (median bar, min-max whisker) plus a panel of the
//! ratios against their targets. Drawn with plotters; text through ab_glyph with a font file.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::report::num;
use crate::results::{Results, KIB_PER_MIB};
use crate::stats::Summary;

const SIZE: (u32, u32) = (1800, 1150);
const FONT: &str = "sans-serif";
const WASM: RGBColor = RGBColor(0x65, 0x4f, 0xf0);
const RUNC: RGBColor = RGBColor(0x8a, 0x8a, 0x8a);
const OTHER: RGBColor = RGBColor(0x2e, 0x9e, 0x6b);
const TARGET: RGBColor = RGBColor(0xd6, 0x28, 0x28);

/// One bar: median as the bar, min-max as the whisker, an optional target line across it.
struct Bar {
    label: String,
    value: Summary,
    color: RGBColor,
    target: Option<f64>,
}

struct Panel {
    title: String,
    unit: String,
    bars: Vec<Bar>,
    /// For figures spanning orders of magnitude (compile vs cached start).
    log: bool,
}

/// Registers `font` as the chart's only font. plotters keeps a `'static` reference, so the
/// bytes are leaked once; the process draws one chart and exits.
fn register_font(font: &Path) -> Result<()> {
    let bytes = std::fs::read(font).with_context(|| format!("reading font {}", font.display()))?;
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font(FONT, FontStyle::Normal, bytes)
        .map_err(|_| anyhow!("{} is not a usable TrueType font", font.display()))
}

/// Draws the chart of `results` into the PNG file `out`.
pub fn draw(results: &Results, font: &Path, out: &Path) -> Result<()> {
    register_font(font)?;
    let root = BitMapBackend::new(out, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let load = results.meta.load.load_at_start[0];
    let title = format!(
        "wasmbox vs runc: median bar, min-max whisker; {} cores, load {:.2} at start",
        results.meta.cores, load
    );
    let (head, body) = root.split_vertically(50);
    head.draw_text(&title, &(FONT, 26).into_text_style(&head), (20, 12))
        .map_err(plot_err)?;
    let panels = panels(results);
    for (area, panel) in body.split_evenly((2, 3)).iter().zip(&panels) {
        draw_panel(area, panel)?;
    }
    root.present().map_err(plot_err)?;
    Ok(())
}

fn plot_err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing the chart: {e}")
}

fn bar(label: &str, value: Summary, color: RGBColor) -> Bar {
    Bar {
        label: label.to_string(),
        value,
        color,
        target: None,
    }
}

/// Which panels, from what was measured.
fn panels(r: &Results) -> Vec<Panel> {
    let mut out = vec![Panel {
        title: "Cold start: ctr run --rm hello".into(),
        unit: "ms".into(),
        bars: vec![
            bar("wasmbox\nwasm hello", r.cold_start.wasm.summary, WASM),
            bar("runc\nstatic hello", r.cold_start.runc.summary, RUNC),
        ],
        log: false,
    }];
    for l in &r.large {
        out.push(Panel {
            title: format!(
                "Large program: {} ({:.0} MB)",
                l.program,
                l.wasm_bytes as f64 / 1e6
            ),
            unit: "ms (log scale)".into(),
            bars: vec![
                bar("first start\n(cache empty)", l.first.summary, OTHER),
                bar("first start after\npull-time compile", l.after_pull.summary, WASM),
                bar("later start\n(cache warm)", l.later.summary, WASM),
                bar("wasm hello", r.cold_start.wasm.summary, WASM),
            ],
            log: true,
        });
    }
    out.push(Panel {
        title: format!("{} concurrent starts: total wall", r.concurrent.n),
        unit: "s".into(),
        bars: vec![
            bar("wasmbox", r.concurrent.starts.wasm.summary, WASM),
            bar("runc", r.concurrent.starts.runc.summary, RUNC),
        ],
        log: false,
    });
    let subjects = r.density_subjects();
    let mut pss = Vec::new();
    let mut drop = Vec::new();
    for n in r.densities() {
        for s in &subjects {
            let color = if s.contains("wasm") { WASM } else { RUNC };
            let name = if s.contains("wasm") {
                "wasmbox"
            } else {
                "runc"
            };
            let label = format!("{name}\nN={n}");
            pss.push(bar(
                &label,
                r.density_series(s, n, "MiB", |d| d.pss_kib_per_container / KIB_PER_MIB)
                    .summary,
                color,
            ));
            drop.push(bar(
                &label,
                r.density_series(s, n, "MiB", |d| {
                    d.mem_available_drop_kib_per_container / KIB_PER_MIB
                })
                .summary,
                color,
            ));
        }
    }
    if !pss.is_empty() {
        out.push(Panel {
            title: "PSS per idle container (+ share of shims)".into(),
            unit: "MiB".into(),
            bars: pss,
            log: false,
        });
        out.push(Panel {
            title: "MemAvailable drop per idle container".into(),
            unit: "MiB".into(),
            bars: drop,
            log: false,
        });
    }
    let ratios: Vec<Bar> = r
        .comparisons()
        .iter()
        .filter_map(|c| {
            let ratio = c.ratio()?;
            let target = c.target?;
            Some(Bar {
                label: wrap(&c.short),
                value: Summary::of(&[ratio]),
                color: if c.passes() == Some(true) { OTHER } else { TARGET },
                target: Some(target),
            })
        })
        .collect();
    out.push(Panel {
        title: "Ratio to baseline (red line: target; at most, but at least for req/s)".into(),
        unit: "x baseline".into(),
        bars: ratios,
        log: false,
    });
    out
}

/// Breaks a label into lines of about 14 characters at spaces.
fn wrap(label: &str) -> String {
    let mut out = String::new();
    let mut line = 0;
    for word in label.split(' ') {
        if line > 0 && line + word.len() > 14 {
            out.push('\n');
            line = 0;
        } else if line > 0 {
            out.push(' ');
            line += 1;
        }
        out.push_str(word);
        line += word
            .rfind('\n')
            .map(|i| word.len() - i - 1)
            .unwrap_or(word.len());
    }
    out
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

fn draw_panel(area: &Area, panel: &Panel) -> Result<()> {
    let n = panel.bars.len().max(1) as f64;
    let x = -0.6f64..(n - 0.4);
    let finite = |v: f64| v.is_finite().then_some(v);
    let hi = panel
        .bars
        .iter()
        .flat_map(|b| [finite(b.value.max), b.target])
        .flatten()
        .fold(0.0f64, f64::max);
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(&panel.title, (FONT, 20))
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(64);
    if panel.log {
        let lo = panel
            .bars
            .iter()
            .filter_map(|b| finite(b.value.min))
            .fold(f64::INFINITY, f64::min);
        let lo = if lo.is_finite() && lo > 0.0 {
            lo / 2.0
        } else {
            1.0
        };
        let chart = builder
            .build_cartesian_2d(x, (lo..(hi * 3.0).max(lo * 10.0)).log_scale())
            .map_err(plot_err)?;
        fill(area, chart, panel, lo)
    } else {
        // Below zero only for figures that can be negative (a MemAvailable drop under noise).
        let lo = panel
            .bars
            .iter()
            .filter_map(|b| finite(b.value.min))
            .fold(0.0f64, f64::min);
        let span = (hi - lo).max(1e-9);
        let chart = builder
            .build_cartesian_2d(
                x,
                (lo - 0.12 * span * (lo < 0.0) as u8 as f64)..(hi + 0.18 * span),
            )
            .map_err(plot_err)?;
        fill(area, chart, panel, 0.0)
    }
}

/// Mesh, bars, whiskers, values and labels; `floor` is where bars start (0, or the log axis' bottom).
fn fill<'a, Y>(
    area: &Area<'a>,
    mut chart: ChartContext<'a, BitMapBackend<'a>, Cartesian2d<RangedCoordf64, Y>>,
    panel: &Panel,
    floor: f64,
) -> Result<()>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc(panel.unit.as_str())
        .y_label_formatter(&|v| num(*v))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(plot_err)?;
    let value_style = (FONT, 14).into_text_style(area);
    for (i, b) in panel.bars.iter().enumerate() {
        let x = i as f64;
        let v = b.value;
        if !v.median.is_finite() {
            continue;
        }
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(x - 0.32, floor), (x + 0.32, v.median)],
                b.color.mix(0.85).filled(),
            )))
            .map_err(plot_err)?;
        if v.max > v.min {
            let whisker = BLACK.stroke_width(2);
            chart
                .draw_series([
                    PathElement::new(vec![(x, v.min), (x, v.max)], whisker),
                    PathElement::new(vec![(x - 0.1, v.min), (x + 0.1, v.min)], whisker),
                    PathElement::new(vec![(x - 0.1, v.max), (x + 0.1, v.max)], whisker),
                ])
                .map_err(plot_err)?;
        }
        if let Some(t) = b.target {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x - 0.45, t), (x + 0.45, t)],
                    TARGET.stroke_width(3),
                )))
                .map_err(plot_err)?;
        }
        // The median's value just above the whisker's top (and the target line).
        let top = v.max.max(v.median).max(b.target.unwrap_or(f64::MIN));
        let (px, py) = chart.backend_coord(&(x, top));
        let base = area.get_base_pixel();
        let text = num(v.median);
        area.draw_text(
            &text,
            &value_style,
            (px - base.0 - 4 * text.len() as i32, py - base.1 - 20),
        )
        .map_err(plot_err)?;
        // Category label under the axis, one text call per line.
        let (lx, ly) = chart.backend_coord(&(x, chart.y_range().start));
        for (k, line) in b.label.lines().enumerate() {
            area.draw_text(
                line,
                &value_style,
                (
                    lx - base.0 - 4 * line.len() as i32,
                    ly - base.1 + 6 + 16 * k as i32,
                ),
            )
            .map_err(plot_err)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_labels() {
        assert_eq!(wrap("cold start"), "cold start");
        assert_eq!(wrap("20 concurrent starts"), "20 concurrent\nstarts");
        assert_eq!(
            wrap("PSS per idle container\nN=20"),
            "PSS per idle\ncontainer\nN=20"
        );
    }
}
