//! Generated bindings for Flowplane's internal gRPC contracts (`proto/`), one module per
//! package.

pub mod common {
    pub mod v1 {
        tonic::include_proto!("flowplane.common.v1");
    }
}

pub mod resources {
    pub mod v1 {
        tonic::include_proto!("flowplane.resources.v1");
    }
}

pub mod identity {
    pub mod v1 {
        tonic::include_proto!("flowplane.identity.v1");
    }
}

pub mod state {
    pub mod v1 {
        tonic::include_proto!("flowplane.state.v1");
    }
}

pub mod learning {
    pub mod v1 {
        tonic::include_proto!("flowplane.learning.v1");
    }
}

pub mod reports {
    pub mod v1 {
        tonic::include_proto!("flowplane.reports.v1");
    }
}
