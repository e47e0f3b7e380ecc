// The field test's Rust program (tests/field/test_field.py, case rust):
// Rust's standard library allocates through the C library's malloc (the
// System allocator), so memcheck and memtrace must count the same calls.
// Vec growth (realloc), a Box leaked with Box::leak (still reachable through
// the static that holds it), a String forgotten with mem::forget (its buffer
// definitely lost), and a Vec of Boxes freed at the end of main.
use std::mem;

static mut KEPT: Option<&'static mut [u64]> = None;

fn grow(n: usize) -> Vec<u32> {
    let mut v = Vec::new();
    for i in 0..n {
        v.push(i as u32 * 3);
    }
    v
}

fn main() {
    let v = grow(100_000);
    let sum: u64 = v.iter().map(|&x| x as u64).sum();

    let kept: &'static mut [u64] = Box::leak(vec![7u64; 512].into_boxed_slice());
    unsafe {
        KEPT = Some(kept);
    }

    for i in 0..16 {
        let s = "forgotten ".repeat(10 + i);
        mem::forget(s);
    }

    let boxes: Vec<Box<[u8; 64]>> = (0..1000).map(|i| Box::new([i as u8; 64])).collect();
    let total: usize = boxes.iter().map(|b| b[0] as usize).sum();
    drop(boxes);

    let kept_len = unsafe { KEPT.as_ref().map(|k| k.len()).unwrap_or(0) };
    println!("sum {} total {} kept {}", sum, total, kept_len);
}
