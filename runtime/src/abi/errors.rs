//! Error codes: what compiled code and the runtime's kernels return when a run fails (0 is
//! success). The one table of them; [`crate::RunError::Code`] shows the code with its meaning.
//! Codes are never reused for another meaning.

macro_rules! error_codes {
    ($($(#[doc = $doc:literal])* $name:ident = $code:literal, $what:literal;)*) => {
        $($(#[doc = $doc])* pub const $name: i32 = $code;)*

        /// Every code, its constant's name and its meaning.
        pub const ALL: &[(i32, &str, &str)] = &[$(($code, stringify!($name), $what)),*];
    };
}

error_codes! {
    /// Compiled code read an index from a tensor that was out of range (Gather, Scatter,
    /// OneHot, …), or a run-time check of the model's inputs failed (Dropout asked to be
    /// random by inputs that are only known at run time).
    ERR_INDEX = 1001, "an index read from a tensor is out of range, or a run-time check on the model's inputs failed";
    /// The conv kernel was given parameters it cannot compute.
    ERR_BAD_CONV_PARAMS = -10, "the convolution kernel was given invalid parameters";
    /// The conv kernel was given less scratch than `kernels::conv_scratch_bytes` asks for,
    /// or a null or misaligned pointer.
    ERR_CONV_BUFFERS = -11, "the convolution kernel was given too little scratch or a bad buffer";
    /// The pool kernel was given parameters it cannot compute.
    ERR_BAD_POOL_PARAMS = -12, "the pooling kernel was given invalid parameters";
    /// The pool kernel was given a null or misaligned pointer.
    ERR_POOL_BUFFERS = -13, "the pooling kernel was given a bad buffer";
    /// `sgemm_epilogue` was given an unknown activation or a C whose columns are not
    /// contiguous.
    ERR_BAD_GEMM_PARAMS = -14, "the GEMM kernel was given invalid parameters";
    /// A string op failed at run time: a bad handle, a null heap, a result that does not
    /// fit the shape compiled in.
    ERR_STRINGS = -20, "a string operation failed (bad handle, no string heap, or a result that does not fit its shape)";
    /// A string op's parameter blob is outside the weights, truncated or malformed.
    ERR_STRINGS_PARAMS = -21, "a string operation's parameters are malformed";
    /// A string op needs a cargo feature this runtime was built without.
    ERR_STRINGS_FEATURE = -22, "a string operation needs a feature this runtime was built without (strings-regex)";
}

/// What `code` means, if it is one of the table's.
pub fn describe(code: i32) -> Option<&'static str> {
    ALL.iter().find(|e| e.0 == code).map(|e| e.2)
}

#[cfg(test)]
mod tests {
    #[test]
    fn codes_are_distinct_and_non_zero() {
        let mut codes: Vec<i32> = super::ALL.iter().map(|e| e.0).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), super::ALL.len());
        assert!(!codes.contains(&0));
        assert_eq!(super::describe(super::ERR_INDEX), Some(super::ALL[0].2));
        assert_eq!(super::describe(7), None);
    }
}
