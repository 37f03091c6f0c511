//! matrix-rust-sdk (the engine of Element X) against a live Parvis: one test per scenario, each with its
//! own users, so they can run side by side. Run them through ../../run.sh (it starts the server and
//! sets PARVIS_URL).

mod common;
mod s1_login;
mod s2_room_list;
mod s3_timeline;
mod s4_e2ee_sas;
mod s5_key_backup;
mod s6_notification;
mod s7_element_x_extras;
