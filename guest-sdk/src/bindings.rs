//! Bindings generated from `wit/`. Public only so that [`entries!`](crate::entries) can
//! export the world from the guest crate; use the crate's typed API instead.

wit_bindgen::generate!({
    path: "../wit",
    world: "guest",
    pub_export_macro: true,
    export_macro_name: "__export_guest",
    default_bindings_module: "spore_guest::bindings",
});
