// Included by every shader that uses subgroup operations. Browsers require the `enable
// subgroups` directive; wgpu's own WGSL front end (naga 30) does not accept it yet, so
// `ShaderSpec::subgroups` sets ENABLE_SUBGROUPS only on wasm.
#if ENABLE_SUBGROUPS
enable subgroups;
#endif
