//! The virtual filesystem: clock-free time conversion ([`time`]) and
//! LIST/NLST/MLSD/MLST line formatting ([`listing`]).

pub mod listing;
pub mod time;
