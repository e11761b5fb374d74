//! NRI plugin library (see issue 4).
