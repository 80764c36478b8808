//! Batch import (in progress).
