//! Wire <-> core conversions and the error mapping. No algorithm logic here.

use rustcore::CoreError;
use tonic::Status;

use crate::pb::{Matrix, Vector};

pub fn status(e: CoreError) -> Status {
    match e {
        CoreError::InvalidInput(m) | CoreError::Numerical(m) => Status::invalid_argument(m),
        CoreError::Cancelled => Status::cancelled("cancelled by the user"),
    }
}

pub fn f64s(bytes: &[u8], name: &str) -> Result<Vec<f64>, Status> {
    if bytes.len() % 8 != 0 {
        return Err(Status::invalid_argument(format!(
            "{name}: {} bytes is not a whole number of little-endian float64 values",
            bytes.len()
        )));
    }
    Ok(bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect())
}

pub fn vector(v: &Option<Vector>, name: &str) -> Result<Vec<f64>, Status> {
    match v {
        Some(v) => f64s(&v.data, name),
        None => Ok(Vec::new()),
    }
}

pub fn matrix(m: &Option<Matrix>, name: &str) -> Result<(Vec<f64>, usize, usize), Status> {
    let Some(m) = m else { return Err(Status::invalid_argument(format!("{name} is missing"))) };
    let data = f64s(&m.data, name)?;
    let (rows, cols) = (m.rows as usize, m.cols as usize);
    if data.len() != rows * cols {
        return Err(Status::invalid_argument(format!(
            "{name} has {} values but its shape is {rows} x {cols}",
            data.len()
        )));
    }
    Ok((data, rows, cols))
}

pub fn to_vector(v: &[f64]) -> Vector {
    let mut data = Vec::with_capacity(v.len() * 8);
    for x in v {
        data.extend_from_slice(&x.to_le_bytes());
    }
    Vector { data }
}

pub fn to_matrix(v: &[f64], rows: usize, cols: usize) -> Matrix {
    Matrix { rows: rows as u32, cols: cols as u32, data: to_vector(v).data }
}

pub fn i8_bytes(v: &[i8]) -> Vec<u8> {
    v.iter().map(|&x| x as u8).collect()
}
