//! The control-line reader: memory bounded by the line limit, no line over
//! it, and the events independent of how the stream was cut. The first
//! bytes choose the limit and the cut points; the rest is the stream.
#![no_main]

#[path = "../../tests/props/mod.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let max = 1 + data[0] as usize % 64;
    let cuts: Vec<usize> = data[1..3].iter().map(|&b| b as usize * 7).collect();
    props::line_reader(&data[3..], &cuts, max);
    // And at the server's real limit.
    props::line_reader(&data[3..], &cuts, props::LINE_LIMIT);
});
