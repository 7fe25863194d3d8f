//! `run_into` allocates nothing once the model is loaded (a counting global allocator
//! watches). Its own test binary, with one test, so no other test allocates meanwhile.
#![cfg(all(target_arch = "x86_64", unix))]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{meta_f32x4, write, x86};
use neoc_runtime::{Model, TensorMut, TensorRef};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Counting is on only in the test's own thread (the test harness's threads
    /// allocate on their own schedule).
    static WATCHED: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if WATCHED.with(Cell::get) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn run_into_does_not_allocate() {
    let model = Model::from_bytes(&write(meta_f32x4(), x86::COPY_VIA_ARENA, &[])).unwrap();
    let shape = [4usize];
    let input = [1f32, 2., 3., 4.];
    let mut output = [0f32; 4];
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    WATCHED.with(|w| w.set(true));
    for _ in 0..100 {
        let inputs = [TensorRef::from_slice(&shape, &input).unwrap()];
        let mut outputs = [TensorMut::from_slice(&shape, &mut output).unwrap()];
        model.run_into(&inputs, &mut outputs).unwrap();
    }
    WATCHED.with(|w| w.set(false));
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert_eq!(output, input);
    assert_eq!(after - before, 0, "run_into allocated");

    // The counter does see allocations: `run` allocates its outputs.
    let x = neoc_runtime::Tensor::from_vec([4], input.to_vec()).unwrap();
    WATCHED.with(|w| w.set(true));
    model.run(&[x]).unwrap();
    WATCHED.with(|w| w.set(false));
    assert!(ALLOCATIONS.load(Ordering::Relaxed) > after);
}
