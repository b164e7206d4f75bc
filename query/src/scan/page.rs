//! Turning a finished sink into a page: drop the `offset`, make the `next` cursor, and for
//! aggregates pick and build only the page's groups.

use std::cmp::Ordering;

use crate::aggregate::Aggregator;
use crate::cursor::Cursor;
use crate::error::QueryError;
use crate::output::OwnedValue;
use crate::query::{OrderTarget, Projection, RowsQuery};

use super::*;

impl Scan {
    pub(super) fn make_page(&mut self, query: &RowsQuery) -> Result<Page, QueryError> {
        let total = self.count_exact;
        let sink = std::mem::replace(
            &mut self.sink,
            Sink::Rows {
                rows: Vec::new(),
                key_order: None,
            },
        );
        let mut page = Page {
            rows: Vec::new(),
            next_cursor: None,
            total: None,
            rows_examined: self.rows_examined,
            groups: None,
        };
        match sink {
            Sink::Rows {
                mut rows,
                key_order,
            } => {
                rows.drain(..self.skip.min(rows.len()));
                if rows.len() > self.limit || (self.truncated && self.limit > 0) {
                    rows.truncate(self.limit);
                    page.next_cursor = rows.last().map(|&r| match &key_order {
                        Some(_) => Cursor::Ordered(r).encode(query.version, &query.canonical),
                        None => Cursor::Row(r).encode(query.version, &query.canonical),
                    });
                }
                page.rows = rows;
                page.total = total.then_some(self.total);
            }
            Sink::TopK { heap, .. } => {
                let mut rows: Vec<Entry> = heap.into_sorted_vec();
                rows.drain(..self.skip.min(rows.len()));
                if rows.len() > self.limit {
                    rows.truncate(self.limit);
                    page.next_cursor = rows
                        .last()
                        .map(|e| Cursor::Ordered(e.row).encode(query.version, &query.canonical));
                }
                page.rows = rows.into_iter().map(|e| e.row).collect();
                page.total = total.then_some(self.total);
            }
            Sink::Aggregate(agg) => {
                let ngroups = agg.num_groups();
                let skip = match query.cursor {
                    Some(Cursor::Offset(o)) => usize::try_from(o).unwrap_or(usize::MAX),
                    _ => self.skip,
                };
                // One more than the page, to know whether there is a next one.
                let ids = page_groups(
                    &agg,
                    query,
                    skip.saturating_add(self.limit).saturating_add(1),
                )?;
                let rest = ids
                    .into_iter()
                    .skip(skip)
                    .map(|g| agg.row(g as usize))
                    .collect::<Result<Vec<_>, _>>()?;
                let more = rest.len() > self.limit;
                let page_rows: Vec<Vec<OwnedValue>> = rest.into_iter().take(self.limit).collect();
                if more && self.limit > 0 {
                    let next = skip.saturating_add(page_rows.len()) as u64;
                    page.next_cursor =
                        Some(Cursor::Offset(next).encode(query.version, &query.canonical));
                }
                page.groups = Some(GroupRows { rows: page_rows });
                page.total = total.then_some(ngroups as u64);
            }
        }
        Ok(page)
    }
}

/// The ids of the first `keep` groups in output order. The output order is `order=` (if
/// given), with ties broken by the group columns ascending (nulls last), or just the group
/// columns. Groups are distinct, so the order is total and the page is deterministic for a given
/// dataset version. Ids are selected (`select_nth_unstable`) before the few kept are sorted, and
/// only the page's rows are built afterwards, so many groups cost O(groups) on the loop, not a
/// sort and a row each.
fn page_groups(agg: &Aggregator, query: &RowsQuery, keep: usize) -> Result<Vec<u32>, QueryError> {
    let n = agg.num_groups();
    let ngroup = agg.num_group_cols();
    let Projection::Aggregate { group_by, .. } = &query.projection else {
        return Ok((0..n as u32).take(keep).collect());
    };
    // Every aggregate of every group is computed once, so an overflow in any group is reported
    // whatever the page; the values of aggregates named in `order=` are kept for the
    // comparisons (`order_values[a]`, empty for the others).
    let mut order_values: Vec<Vec<OwnedValue>> = vec![Vec::new(); agg.num_aggs()];
    let ordered_by = |a: usize| {
        query
            .order
            .iter()
            .any(|o| o.target == OrderTarget::Aggregate(a))
    };
    for g in 0..n {
        for (a, values) in order_values.iter_mut().enumerate() {
            let v = agg.agg_value(g, a)?;
            if ordered_by(a) {
                values.push(v);
            }
        }
    }
    // Sort keys: a group column's index among the group columns, or an aggregate's index.
    let keys: Vec<(Result<usize, usize>, bool, bool)> = query
        .order
        .iter()
        .map(|order| {
            let target = match order.target {
                OrderTarget::Column(c) => Ok(group_by.iter().position(|&g| g == c).unwrap_or(0)),
                OrderTarget::Aggregate(a) => Err(a),
            };
            (target, order.desc, order.nulls_first)
        })
        .collect();
    let group_key = |g: u32, j: usize| Key::of(agg.group_value(g as usize, j));
    let cmp = |&x: &u32, &y: &u32| {
        for &(target, desc, nulls_first) in &keys {
            let o = match target {
                Ok(j) => cmp_ordered(&group_key(x, j), 0, &group_key(y, j), 0, desc, nulls_first),
                Err(a) => cmp_ordered(
                    &Key::of_owned(&order_values[a][x as usize]),
                    0,
                    &Key::of_owned(&order_values[a][y as usize]),
                    0,
                    desc,
                    nulls_first,
                ),
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        (0..ngroup)
            .map(|j| cmp_ordered(&group_key(x, j), 0, &group_key(y, j), 0, false, false))
            .find(|&o| o != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
    };
    let mut ids: Vec<u32> = (0..n as u32).collect();
    if keep < ids.len() {
        if keep == 0 {
            return Ok(Vec::new());
        }
        // The `keep` first groups in output order end up in front, in some order.
        ids.select_nth_unstable_by(keep - 1, cmp);
        ids.truncate(keep);
    }
    ids.sort_unstable_by(cmp);
    Ok(ids)
}
