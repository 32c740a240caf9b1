//! Custom types scripts see, one module per type: how each prints, indexes and which
//! methods it has.

use rhai::Engine;

pub mod bars;
pub mod batch_handle;
pub mod date;
pub mod time;

/// Registers every custom type under the name scripts and docs show.
pub(crate) fn register(engine: &mut Engine) {
    engine
        .register_type_with_name::<time::Time>("Time")
        .register_type_with_name::<date::ScriptDate>("Date")
        .register_type_with_name::<bars::ScriptBars>("Bars")
        .register_type_with_name::<batch_handle::ScriptBatchHandle>("BatchHandle")
        .register_iterator::<bars::ScriptBars>();
}
