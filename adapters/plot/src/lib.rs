#![doc = include_str!("../README.md")]

use std::path::{Path, PathBuf};
use std::sync::Once;

pub use plotters;
use plotters::coord::Shift;
use plotters::prelude::*;

/// A figure that could not be drawn or saved.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: cannot draw figure: {message}", path.display())]
pub struct PlotError {
    /// The figure's file.
    pub path: PathBuf,
    /// The plotting backend's message.
    pub message: String,
}

static FONT: Once = Once::new();
const FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const SIZE: (u32, u32) = (900, 560);

fn register_font() {
    FONT.call_once(|| {
        // The bundled file is a valid TrueType font; a failure would only leave text undrawn.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT_BYTES);
    });
}

/// Something that can draw itself on any plotters backend.
pub trait Figure {
    /// Draws on `root`; errors are the backend's message.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

/// Renders `fig` to `STEM.png` and `STEM.svg`; returns both paths.
pub fn save(fig: &impl Figure, stem: &Path) -> Result<Vec<PathBuf>, PlotError> {
    register_font();
    let png = stem.with_extension("png");
    let svg = stem.with_extension("svg");
    let err = |path: &Path| {
        let path = path.to_owned();
        move |message: String| PlotError { path, message }
    };
    {
        let root = BitMapBackend::new(&png, SIZE).into_drawing_area();
        fig.draw(&root).map_err(err(&png))?;
        root.present().map_err(|e| err(&png)(e.to_string()))?;
    }
    {
        let root = SVGBackend::new(&svg, SIZE).into_drawing_area();
        fig.draw(&root).map_err(err(&svg))?;
        root.present().map_err(|e| err(&svg)(e.to_string()))?;
    }
    Ok(vec![png, svg])
}

fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Named series of `(x, y)` points drawn as lines, with an optional horizontal reference line.
pub struct Lines {
    /// Title above the plot.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// `(name, points)` per series.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    /// A dashed horizontal line at this y (e.g. `L = 0`).
    pub reference: Option<f64>,
    /// Fixed y range; `None` fits the data.
    pub y_range: Option<(f64, f64)>,
}

fn bounds(points: impl Iterator<Item = (f64, f64)>) -> ((f64, f64), (f64, f64)) {
    let mut b = ((f64::MAX, f64::MIN), (f64::MAX, f64::MIN));
    for (x, y) in points.filter(|p| p.0.is_finite() && p.1.is_finite()) {
        b.0 = (b.0.0.min(x), b.0.1.max(x));
        b.1 = (b.1.0.min(y), b.1.1.max(y));
    }
    let fix = |(lo, hi): (f64, f64)| {
        if lo > hi {
            (0.0, 1.0)
        } else if hi - lo < 1e-12 {
            (lo - 0.5, hi + 0.5)
        } else {
            (lo, hi)
        }
    };
    (fix(b.0), fix(b.1))
}

impl Figure for Lines {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(s)?;
        let pts = self.series.iter().flat_map(|s| s.1.iter().copied());
        let (xr, mut yr) = bounds(pts.chain(self.reference.map(|y| (f64::NAN, y))));
        if let Some(y) = self.reference {
            yr = (yr.0.min(y), yr.1.max(y));
        }
        let pad = (yr.1 - yr.0) * 0.05;
        let yr = self.y_range.unwrap_or((yr.0 - pad, yr.1 + pad));
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(xr.0..xr.1, yr.0..yr.1)
            .map_err(s)?;
        chart
            .configure_mesh()
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(s)?;
        if let Some(y) = self.reference {
            chart
                .draw_series(DashedLineSeries::new(
                    [(xr.0, y), (xr.1, y)],
                    6,
                    4,
                    BLACK.mix(0.6).stroke_width(1),
                ))
                .map_err(s)?;
        }
        for (k, (name, points)) in self.series.iter().enumerate() {
            let color = Palette99::pick(k).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(s)?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        if self.series.len() > 1 || self.series.first().is_some_and(|s| !s.0.is_empty()) {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.4))
                .label_font(("sans-serif", 14))
                .draw()
                .map_err(s)?;
        }
        Ok(())
    }
}

/// The consensus curve `c(t)` with nodes of a run scattered over it, coloured by group.
pub struct CurveWithPoints {
    /// Title above the plot.
    pub title: String,
    /// The curve, `(trust, consensus)`.
    pub curve: Vec<(f64, f64)>,
    /// `(group name, points)`.
    pub points: Vec<(String, Vec<(f64, f64)>)>,
    /// A tangent drawn through `(x, y)` with slope `m`, e.g. at `t = kappa`.
    pub tangent: Option<(f64, f64, f64)>,
}

impl Figure for CurveWithPoints {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(s)?;
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..1.0f64, -0.02..1.02f64)
            .map_err(s)?;
        chart
            .configure_mesh()
            .x_desc("trust t (stake connected)")
            .y_desc("consensus c(t)")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(s)?;
        chart
            .draw_series(LineSeries::new(
                self.curve.iter().copied(),
                BLACK.stroke_width(2),
            ))
            .map_err(s)?
            .label("c(t) from deepnode_consensus::epoch")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BLACK.stroke_width(2)));
        if let Some((x0, y0, m)) = self.tangent {
            let half = 0.12;
            let line = [(x0 - half, y0 - m * half), (x0 + half, y0 + m * half)];
            chart
                .draw_series(DashedLineSeries::new(line, 5, 4, RED.stroke_width(2)))
                .map_err(s)?
                .label(format!("slope {m:.3} at t = {x0}"))
                .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], RED.stroke_width(2)));
        }
        for (k, (name, pts)) in self.points.iter().enumerate() {
            let color = Palette99::pick(k).to_rgba();
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(s)?
                .label(name.as_str())
                .legend(move |(x, y)| Circle::new((x + 9, y), 4, color.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(s)?;
        Ok(())
    }
}

/// A grid of values with labelled rows and columns, each cell coloured and printed.
pub struct Heatmap {
    /// Title above the plot.
    pub title: String,
    /// Column labels (left to right).
    pub columns: Vec<String>,
    /// Row labels (top to bottom).
    pub rows: Vec<String>,
    /// `values[row][column]`, coloured over `range`.
    pub values: Vec<Vec<f64>>,
    /// The values mapped to the ends of the colour scale.
    pub range: (f64, f64),
}

impl Figure for Heatmap {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(s)?;
        let (nr, nc) = (self.rows.len(), self.columns.len());
        let (title, body) = root.split_vertically(44);
        title
            .draw(&Text::new(
                self.title.as_str(),
                (12, 12),
                ("sans-serif", 20).into_font(),
            ))
            .map_err(s)?;
        let (labels, grid) = body.split_horizontally(190);
        let (w, h) = grid.dim_in_pixel();
        let cw = (w.saturating_sub(10) as usize / nc.max(1)) as i32;
        let ch = (h.saturating_sub(40) as usize / nr.max(1)) as i32;
        let span = (self.range.1 - self.range.0).max(1e-12);
        for (r, row) in self.values.iter().enumerate() {
            let y = r as i32 * ch;
            labels
                .draw(&Text::new(
                    self.rows[r].as_str(),
                    (8, y + ch / 2 - 7),
                    ("sans-serif", 14).into_font(),
                ))
                .map_err(s)?;
            for (c, &v) in row.iter().enumerate() {
                let x = c as i32 * cw;
                let f = ((v - self.range.0) / span).clamp(0.0, 1.0);
                let color = HSLColor(0.66 * (1.0 - f), 0.75, 0.5);
                grid.draw(&Rectangle::new(
                    [(x, y), (x + cw - 2, y + ch - 2)],
                    color.filled(),
                ))
                .map_err(s)?;
                grid.draw(&Text::new(
                    format!("{v:.2}"),
                    (x + cw / 2 - 14, y + ch / 2 - 7),
                    ("sans-serif", 13).into_font().color(&WHITE),
                ))
                .map_err(s)?;
            }
        }
        for (c, label) in self.columns.iter().enumerate() {
            grid.draw(&Text::new(
                label.as_str(),
                (c as i32 * cw + cw / 2 - 14, nr as i32 * ch + 8),
                ("sans-serif", 14).into_font(),
            ))
            .map_err(s)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines() -> Lines {
        Lines {
            title: "t".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            series: vec![("a".into(), vec![(0.0, 1.0), (1.0, 2.0)])],
            reference: Some(1.5),
            y_range: None,
        }
    }

    #[test]
    fn the_same_figure_is_the_same_bytes_and_a_bad_path_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = save(&lines(), &dir.path().join("a")).unwrap();
        let b = save(&lines(), &dir.path().join("b")).unwrap();
        assert_eq!(a.len(), 2);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(std::fs::read(x).unwrap(), std::fs::read(y).unwrap());
        }
        let svg = std::fs::read_to_string(&a[1]).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("900"), "{svg:.80}");
        let missing = dir.path().join("no/such/dir/c");
        let e = save(&lines(), &missing).unwrap_err();
        assert_eq!(e.path, missing.with_extension("png"));
        assert!(e.to_string().contains("cannot draw figure"), "{e}");
    }
}
