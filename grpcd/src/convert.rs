//! Wire <-> core conversions and the error mapping. No algorithm logic here.

use rustcore::CoreError;
use tonic::Status;

use crate::pb::{Matrix, Vector};

pub fn status(e: CoreError) -> Status {
    match e {
        CoreError::InvalidInput(m) => Status::invalid_argument(m),
        // Still INVALID_ARGUMENT (a ValueError for every client), marked so that our client
        // raises NumericalError: the input was valid, the computation failed numerically.
        CoreError::Numerical(m) => {
            let mut md = tonic::metadata::MetadataMap::new();
            md.insert(
                "hftlab-error-kind",
                tonic::metadata::MetadataValue::from_static("numerical"),
            );
            Status::with_metadata(tonic::Code::InvalidArgument, m, md)
        }
        CoreError::Cancelled => Status::cancelled("cancelled by the user"),
        CoreError::ResourceExhausted(m) => Status::resource_exhausted(m),
    }
}

pub fn f64s(bytes: &[u8], name: &str) -> Result<Vec<f64>, Status> {
    if !bytes.len().is_multiple_of(8) {
        return Err(Status::invalid_argument(format!(
            "{name}: {} bytes is not a whole number of little-endian float64 values",
            bytes.len()
        )));
    }
    let n = bytes.len() / 8;
    #[cfg(target_endian = "little")]
    {
        // the wire format is the machine format: one memcpy (the byte buffer may be unaligned)
        let mut out = rustcore::limits::zeroed(n, name).map_err(status)?;
        // SAFETY: `out` holds exactly n * 8 writable bytes; any bit pattern is a valid f64.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.as_mut_ptr() as *mut u8, n * 8)
        };
        Ok(out)
    }
    #[cfg(not(target_endian = "little"))]
    Ok(bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect())
}

pub fn vector(v: &Option<Vector>, name: &str) -> Result<Vec<f64>, Status> {
    match v {
        Some(Vector { shm: Some(r), .. }) => crate::shm::read(r, name), // shared-memory arrays
        Some(v) => f64s(&v.data, name),
        None => Ok(Vec::new()),
    }
}

pub fn matrix(m: &Option<Matrix>, name: &str) -> Result<(Vec<f64>, usize, usize), Status> {
    let Some(m) = m else {
        return Err(Status::invalid_argument(format!("{name} is missing")));
    };
    let data = match &m.shm {
        Some(r) => crate::shm::read(r, name)?, // shared-memory arrays
        None => f64s(&m.data, name)?,
    };
    let (rows, cols) = (m.rows as usize, m.cols as usize);
    check_shape(data.len(), rows, cols, name)?;
    Ok((data, rows, cols))
}

/// A matrix's value count must be rows x cols (shared with shm::matrix_values).
pub fn check_shape(len: usize, rows: usize, cols: usize, name: &str) -> Result<(), Status> {
    if rows.checked_mul(cols) != Some(len) {
        return Err(Status::invalid_argument(format!(
            "{name} has {len} values but its shape is {rows} x {cols}"
        )));
    }
    Ok(())
}

pub fn to_vector(v: &[f64]) -> Vector {
    if let Some(r) = crate::shm::write(v) {
        // the call has a shared-memory result segment: the values went there
        return Vector {
            data: Default::default(),
            shm: Some(r),
        };
    }
    #[cfg(target_endian = "little")]
    {
        // SAFETY: viewing initialised f64s as their bytes (alignment of u8 is 1).
        let bytes = unsafe {
            std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v))
        };
        Vector {
            data: bytes.to_vec().into(), // Bytes from a Vec: no copy
            shm: None,
        }
    }
    #[cfg(not(target_endian = "little"))]
    {
        let mut data = Vec::with_capacity(v.len() * 8);
        for x in v {
            data.extend_from_slice(&x.to_le_bytes());
        }
        Vector {
            data: data.into(),
            shm: None,
        }
    }
}

pub fn to_matrix(v: &[f64], rows: usize, cols: usize) -> Matrix {
    let Vector { data, shm } = to_vector(v);
    Matrix {
        rows: rows as u32,
        cols: cols as u32,
        data,
        shm,
    }
}

pub fn i8_bytes(v: &[i8]) -> Vec<u8> {
    v.iter().map(|&x| x as u8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_little_endian() {
        let v = [1.5, -0.0, f64::MAX, f64::MIN_POSITIVE, 3.0];
        let pb = to_vector(&v);
        assert_eq!(pb.data.len(), 40);
        assert_eq!(&pb.data[..8], &1.5f64.to_le_bytes());
        let back = vector(&Some(pb), "x").unwrap();
        assert_eq!(
            back.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        assert!(vector(&None, "x").unwrap().is_empty());
    }

    #[test]
    fn ragged_bytes_are_invalid_argument() {
        let e = f64s(&[0u8; 12], "prices").unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e
            .message()
            .contains("prices: 12 bytes is not a whole number"));
    }

    #[test]
    fn matrix_shape_is_checked() {
        let m = Some(to_matrix(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3));
        let (d, r, c) = matrix(&m, "prices").unwrap();
        assert_eq!((r, c, d[5]), (2, 3, 6.0));
        let bad = Some(Matrix {
            rows: 4,
            cols: 3,
            data: to_vector(&[1.0; 6]).data,
            shm: None,
        });
        let e = matrix(&bad, "prices").unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("has 6 values but its shape is 4 x 3"));
        assert!(matrix(&None, "prices")
            .unwrap_err()
            .message()
            .contains("prices is missing"));
    }

    #[test]
    fn core_errors_map_to_grpc_codes() {
        assert_eq!(
            status(CoreError::invalid("bad")).code(),
            tonic::Code::InvalidArgument
        );
        assert_eq!(
            status(CoreError::numerical("singular")).code(),
            tonic::Code::InvalidArgument
        );
        assert_eq!(status(CoreError::Cancelled).code(), tonic::Code::Cancelled);
        assert_eq!(
            status(CoreError::ResourceExhausted("big".into())).code(),
            tonic::Code::ResourceExhausted
        );
    }
}
