//! Arrow IPC stream output (`application/vnd.apache.arrow.stream`) through the arrow-ipc crate:
//! a schema message, one record batch per encoder step, then the end-of-stream marker.
//!
//! Types: int64 -> Int64, float64 -> Float64, bool -> Boolean, utf8 -> Utf8, date -> Date32,
//! timestamp -> Timestamp(Microsecond, "UTC"). Every field is nullable. The page's `next`
//! cursor and `total` travel in the schema metadata as `quarry.next` / `quarry.total`.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{DataType as ArrowType, Field, Schema, SchemaRef, TimeUnit};
use quarry_format::{DataType, Value};

enum Builder {
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    Str(StringBuilder),
    Date(Date32Builder),
    Ts(TimestampMicrosecondBuilder),
}

impl Builder {
    fn new(t: DataType, rows: usize) -> Builder {
        match t {
            DataType::Int64 => Builder::Int(Int64Builder::with_capacity(rows)),
            DataType::Float64 => Builder::Float(Float64Builder::with_capacity(rows)),
            DataType::Bool => Builder::Bool(BooleanBuilder::with_capacity(rows)),
            DataType::Utf8 => Builder::Str(StringBuilder::with_capacity(rows, rows * 16)),
            DataType::Date => Builder::Date(Date32Builder::with_capacity(rows)),
            DataType::Timestamp => {
                Builder::Ts(TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC"))
            }
        }
    }

    /// Appends `v`; a value of another type (cannot happen for a consistent page) as null.
    fn push(&mut self, v: Value<'_>) {
        match (self, v) {
            (Builder::Int(b), Value::Int64(x)) => b.append_value(x),
            (Builder::Float(b), Value::Float64(x)) => b.append_value(x),
            (Builder::Bool(b), Value::Bool(x)) => b.append_value(x),
            (Builder::Str(b), Value::Utf8(x)) => b.append_value(x),
            (Builder::Date(b), Value::Date(x)) => b.append_value(x),
            (Builder::Ts(b), Value::Timestamp(x)) => b.append_value(x),
            (Builder::Int(b), _) => b.append_null(),
            (Builder::Float(b), _) => b.append_null(),
            (Builder::Bool(b), _) => b.append_null(),
            (Builder::Str(b), _) => b.append_null(),
            (Builder::Date(b), _) => b.append_null(),
            (Builder::Ts(b), _) => b.append_null(),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Builder::Int(mut b) => Arc::new(b.finish()),
            Builder::Float(mut b) => Arc::new(b.finish()),
            Builder::Bool(mut b) => Arc::new(b.finish()),
            Builder::Str(mut b) => Arc::new(b.finish()),
            Builder::Date(mut b) => Arc::new(b.finish()),
            Builder::Ts(mut b) => Arc::new(b.finish()),
        }
    }
}

fn arrow_type(t: DataType) -> ArrowType {
    match t {
        DataType::Int64 => ArrowType::Int64,
        DataType::Float64 => ArrowType::Float64,
        DataType::Bool => ArrowType::Boolean,
        DataType::Utf8 => ArrowType::Utf8,
        DataType::Date => ArrowType::Date32,
        DataType::Timestamp => ArrowType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
    }
}

/// The IPC writer and the schema of one response.
pub(crate) struct ArrowStream {
    writer: StreamWriter<Vec<u8>>,
    schema: SchemaRef,
    types: Vec<DataType>,
}

impl std::fmt::Debug for ArrowStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArrowStream")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl ArrowStream {
    /// Writes the schema message (taken out with [`take`](Self::take)).
    pub(crate) fn new(
        names: &[String],
        types: &[DataType],
        next: Option<&str>,
        total: Option<u64>,
    ) -> Option<ArrowStream> {
        let fields: Vec<Field> = names
            .iter()
            .zip(types)
            .map(|(n, t)| Field::new(n, arrow_type(*t), true))
            .collect();
        let mut metadata = std::collections::HashMap::new();
        if let Some(n) = next {
            metadata.insert("quarry.next".to_string(), n.to_string());
        }
        if let Some(t) = total {
            metadata.insert("quarry.total".to_string(), t.to_string());
        }
        let schema = Arc::new(Schema::new_with_metadata(fields, metadata));
        let writer = StreamWriter::try_new(Vec::new(), &schema).ok()?;
        Some(ArrowStream {
            writer,
            schema,
            types: types.to_vec(),
        })
    }

    /// Bytes written so far and not yet handed out.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        std::mem::take(self.writer.get_mut())
    }

    /// Writes one record batch of `rows` rows; `row(i, push)` pushes row i's values in order.
    pub(crate) fn write_batch(
        &mut self,
        rows: usize,
        mut row: impl FnMut(usize, &mut dyn FnMut(usize, Value<'_>)),
    ) -> bool {
        let mut builders: Vec<Builder> =
            self.types.iter().map(|t| Builder::new(*t, rows)).collect();
        for i in 0..rows {
            row(i, &mut |col, v| {
                if let Some(b) = builders.get_mut(col) {
                    b.push(v);
                }
            });
        }
        let columns: Vec<ArrayRef> = builders.into_iter().map(Builder::finish).collect();
        match RecordBatch::try_new(self.schema.clone(), columns) {
            Ok(batch) => self.writer.write(&batch).is_ok(),
            Err(_) => false,
        }
    }

    /// Writes the end-of-stream marker.
    pub(crate) fn finish(&mut self) -> bool {
        self.writer.finish().is_ok()
    }
}
