//! The read side of evaluation (issue 14): the class figures every report
//! card of a class shares, cached per class and period until the model
//! moves, and the printable bulletin ([`bulletin`]).

pub mod bulletin;

use parking_lot::Mutex;
use registre_domain::{ClassId, PeriodId};
use registre_projections::{ClassFigures, Period, ReadModel};
use registre_store::Position;
use std::collections::HashMap;
use std::sync::Arc;

/// A class's figures per period (`None`: all time), with the model position
/// they were computed at: the council week asks for every report card of a
/// class in a row, and each needs the whole class's averages and ranks.
#[derive(Debug, Default)]
pub struct FiguresCache(Mutex<HashMap<FiguresKey, (Position, Arc<ClassFigures>)>>);

/// A class and a period (`None`: all time).
type FiguresKey = (ClassId, Option<PeriodId>);

impl FiguresCache {
    /// The figures of `class` over `period` in `m`, the live model read under
    /// its lock (never a past state: the cache is keyed by the live model's
    /// [`ReadModel::grade_figures_version`]).
    pub fn get(&self, m: &ReadModel, class: ClassId, period: Option<&Period>) -> Arc<ClassFigures> {
        let key = (class, period.map(|p| p.id));
        let position = m.grade_figures_version();
        if let Some((at, figures)) = self.0.lock().get(&key) {
            if *at == position {
                return figures.clone();
            }
        }
        let figures = Arc::new(m.class_figures(class, period.map(Period::range)));
        self.0.lock().insert(key, (position, figures.clone()));
        figures
    }
}
