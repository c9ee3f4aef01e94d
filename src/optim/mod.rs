//! Optimizers: hand-crafted baselines (Adam, SGD, NAG, RMSprop, GD) and learned optimizers
//! (ConvergentL2O, LSTM). Empty until the optimizers issue lands; listed here so the layout
//! of the crate matches ARCHITECTURE.md.
