//! `spin:variables@3.0.0`: a component reads only the variables its manifest entry names
//! (`[component.x.variables]`), resolved at start.

use super::spin::variables::variables;
use super::{HasSpin, Spin, SpinView};
use wasmtime::Result;
use wasmtime::component::{Accessor, Linker};

pub fn add_to_linker<T: HasSpin>(linker: &mut Linker<T>) -> Result<()> {
    variables::add_to_linker::<_, Spin>(linker, T::spin)
}

impl variables::Host for SpinView<'_> {}

impl<T: 'static> variables::HostWithStore<T> for Spin {
    async fn get(a: &Accessor<T, Self>, name: String) -> Result<Result<String, variables::Error>> {
        if !crate::manifest::valid_variable_name(&name) {
            return Ok(Err(variables::Error::InvalidName(name)));
        }
        Ok(a.with(|mut x| x.get().ctx.grants.variables.get(&name).cloned()).ok_or(variables::Error::Undefined(name)))
    }
}
