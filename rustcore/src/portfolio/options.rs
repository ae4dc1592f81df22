//! The named options of the portfolio calls (issue 15): the optimisation method, the returns
//! kind and the covariance estimator, as enums with one `parse` (a clear error listing the valid
//! names, the same text over PyO3 and gRPC) and one `name`. The transports parse once, at the
//! boundary; the core matches on the enums, never on strings.

use crate::error::{CoreError, CoreResult};

/// `"what must be one of "a", "b", got "x""`: the one error text of every option below.
fn unknown(what: &str, got: &str, valid: &[&str]) -> CoreError {
    let list = valid
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ");
    CoreError::invalid(format!("{what} must be one of {list}, got \"{got}\""))
}

/// An enum of named options: `ALL`, `NAMES`, `parse` (exact names) and `name`.
macro_rules! named_options {
    ($(#[$m:meta])* $ty:ident, $what:literal, default $def:ident,
     { $($(#[$vm:meta])* $var:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $ty {
            $($(#[$vm])* $var),+
        }

        impl $ty {
            /// Every variant, in the order of [`Self::NAMES`].
            pub const ALL: &'static [$ty] = &[$($ty::$var),+];
            /// The valid names, in the order the error message lists them.
            pub const NAMES: &'static [&'static str] = &[$($s),+];

            /// Parse a name (exact, lower case); anything else is an `InvalidInput` error naming
            /// the option and listing the valid names.
            pub fn parse(name: &str) -> CoreResult<Self> {
                match name {
                    $($s => Ok($ty::$var),)+
                    _ => Err(unknown($what, name, Self::NAMES)),
                }
            }

            /// The canonical name (what `parse` accepts).
            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$var => $s),+
                }
            }
        }

        impl Default for $ty {
            fn default() -> Self {
                $ty::$def
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

named_options!(
    /// The optimisation problem of `optimize_portfolio`.
    PortfolioMethod, "method", default MaxSharpe, {
        /// min w'Σw s.t. 1'w = 1 and the weight bounds.
        MinVariance => "min_variance",
        /// The tangency portfolio: max (μ'w − rf) / sqrt(w'Σw) within the bounds.
        MaxSharpe => "max_sharpe",
        /// Equal (or budgeted) risk contributions, long only.
        RiskParity => "risk_parity",
        /// w = 1/N.
        EqualWeight => "equal_weight",
    }
);

named_options!(
    /// How prices become returns.
    ReturnsKind, "returns", default Simple, {
        /// p_t / p_{t-1} − 1.
        Simple => "simple",
        /// ln(p_t / p_{t-1}).
        Log => "log",
    }
);

named_options!(
    /// The covariance estimator.
    CovarianceEstimator, "covariance", default Sample, {
        /// X'X / (T − 1) of the demeaned returns (ddof = 1).
        Sample => "sample",
        /// sklearn.covariance.LedoitWolf (shrinkage of the ddof = 0 estimate).
        LedoitWolf => "ledoit_wolf",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_errors_list_the_valid_names() {
        for &m in PortfolioMethod::ALL {
            assert_eq!(PortfolioMethod::parse(m.name()), Ok(m));
        }
        for &r in ReturnsKind::ALL {
            assert_eq!(ReturnsKind::parse(r.name()), Ok(r));
        }
        for &c in CovarianceEstimator::ALL {
            assert_eq!(CovarianceEstimator::parse(c.name()), Ok(c));
        }
        assert_eq!(
            PortfolioMethod::parse("markowitz"),
            Err(CoreError::invalid(
                "method must be one of \"min_variance\", \"max_sharpe\", \"risk_parity\", \
                 \"equal_weight\", got \"markowitz\""
            ))
        );
        assert_eq!(
            ReturnsKind::parse("pct"),
            Err(CoreError::invalid(
                "returns must be one of \"simple\", \"log\", got \"pct\""
            ))
        );
        assert_eq!(
            CovarianceEstimator::parse("Sample"),
            Err(CoreError::invalid(
                "covariance must be one of \"sample\", \"ledoit_wolf\", got \"Sample\""
            ))
        );
        assert!(PortfolioMethod::parse("").is_err());
        assert_eq!(ReturnsKind::default(), ReturnsKind::Simple);
        assert_eq!(CovarianceEstimator::default(), CovarianceEstimator::Sample);
    }
}
