// A direct Python binding for the step API, beside the torch.library operator of step.cpp.
//
// A small step is little work, and calling it as torch.ops.lstmkit.lstm_step adds a fixed cost of
// the same order (Python arguments parsed against the schema, boxed into IValues, the weight lists
// rebuilt on every call; measured in docs/cpu_engine.md). PackedStep holds the packed weights in C++ once, so a step passes
// three tensors through pybind11 and calls the kernel directly. Inference only, like the operator:
// it bypasses autograd (the stepper runs without gradients), so the operator stays the path that
// torch.compile, TorchScript and autograd see.
#include <torch/csrc/utils/pybind.h>
#include <tuple>
#include <vector>

namespace lstmkit {
// step.cpp
std::tuple<at::Tensor, at::Tensor, at::Tensor> lstm_step(const at::Tensor& x, const at::Tensor& h,
                                                         const at::Tensor& c, at::TensorList w_cat,
                                                         at::TensorList bias, at::TensorList w_hr);
at::Tensor pack_step_weights(const at::Tensor& w_cat);
}  // namespace lstmkit

namespace {

struct PackedStep {
  std::vector<at::Tensor> w_cat, bias, w_hr;  // as lstm_step takes them, one entry per layer

  std::tuple<at::Tensor, at::Tensor, at::Tensor> operator()(const at::Tensor& x, const at::Tensor& h,
                                                            const at::Tensor& c) const {
    return lstmkit::lstm_step(x, h, c, w_cat, bias, w_hr);
  }
};

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "lstmkit cpu engine: direct bindings (the operators are registered with torch.library)";
  pybind11::class_<PackedStep>(m, "PackedStep")
      .def(pybind11::init<std::vector<at::Tensor>, std::vector<at::Tensor>, std::vector<at::Tensor>>(),
           pybind11::arg("w_cat"), pybind11::arg("bias"), pybind11::arg("w_hr"))
      .def("__call__", &PackedStep::operator(), pybind11::arg("x"), pybind11::arg("h"), pybind11::arg("c"));
  m.def("pack_step_weights", &lstmkit::pack_step_weights, pybind11::arg("w_cat"),
        "[W_ih | W_hh] (4H, I + P) in the layout lstm_step reads fastest on this CPU");
}
