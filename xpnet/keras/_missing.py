"""Keras 3 public names xpnet does not provide yet, per ``keras.<module>``: reaching one
through ``xpnet.keras`` raises NotImplementedError naming it (not an AttributeError), so a
Keras program stops on a message that says what is missing. A name that exists in xpnet
(now or once a branch lands) is found before this list is consulted."""

_SPLIT = str.split

MISSING = {
    "keras": _SPLIT("""export quantizers visualization
        constraints preprocessing backend tree config dtype_policies wrappers
        StatelessScope Function Operation device name_scope RematScope
        remat"""),
    "layers": _SPLIT("""AdditiveAttention AlphaDropout Attention AutoContrast
        CategoryEncoding ConvLSTM1D ConvLSTM2D ConvLSTM3D Discretization EinsumDense
        Embedding Equalization FlaxLayer GRU GRUCell GroupQueryAttention HashedCrossing
        Hashing InputSpec IntegerLookup JaxLayer LSTM LSTMCell Masking MelSpectrogram MixUp
        MultiHeadAttention Pipeline RNN RandAugment RandomBrightness RandomColorDegeneration
        RandomColorJitter RandomGrayscale RandomHeight RandomHue RandomPosterization
        RandomSaturation RandomSharpness RandomShear RandomWidth STFTSpectrogram SimpleRNN
        SimpleRNNCell Solarization SpectralNormalization StackedRNNCells StringLookup
        TFSMLayer TextVectorization TimeDistributed Bidirectional TorchModuleWrapper
        Wrapper"""),
    "ops": _SPLIT("""conv conv_transpose depthwise_conv separable_conv average_pool max_pool
        batch_normalization moments ctc_loss ctc_decode fft fft2 rfft irfft stft istft
        scatter scatter_update slice_update segment_sum segment_max top_k in_top_k
        fori_loop while_loop scan associative_scan cond switch map vectorized_map
        custom_gradient qr svd eig eigh cholesky inv solve lstsq det logdet argsort sort
        unique bincount histogram searchsorted digitize image rsqrt erfinv polar
        dot_product_attention"""),
    "utils": _SPLIT("""Config CustomObjectScope FeatureSpace array_to_img
        audio_dataset_from_directory clear_session custom_object_scope
        deserialize_keras_object disable_interactive_logging enable_interactive_logging
        get_custom_objects get_file get_source_inputs image_dataset_from_directory
        img_to_array is_interactive_logging_enabled is_keras_tensor legacy load_img
        model_to_dot normalize pad_sequences plot_model save_img serialize_keras_object
        split_dataset standardize_dtype text_dataset_from_directory
        timeseries_dataset_from_array"""),
    "callbacks": _SPLIT("RemoteMonitor SwapEMAWeights"),
    "applications": _SPLIT("""ConvNeXtBase ConvNeXtLarge ConvNeXtSmall ConvNeXtTiny
        ConvNeXtXLarge DenseNet121 DenseNet169 DenseNet201 EfficientNetB0 EfficientNetB1
        EfficientNetB2 EfficientNetB3 EfficientNetB4 EfficientNetB5 EfficientNetB6
        EfficientNetB7 EfficientNetV2B0 EfficientNetV2B1 EfficientNetV2B2 EfficientNetV2B3
        EfficientNetV2L EfficientNetV2M EfficientNetV2S InceptionResNetV2 InceptionV3
        MobileNet MobileNetV2 MobileNetV3Large MobileNetV3Small NASNetLarge NASNetMobile
        ResNet101 ResNet101V2 ResNet152 ResNet152V2 ResNet50 ResNet50V2 VGG16 VGG19
        Xception convnext densenet efficientnet imagenet_utils inception_resnet_v2
        inception_v3 mobilenet mobilenet_v2 mobilenet_v3 nasnet resnet resnet50 resnet_v2
        vgg16 vgg19 xception"""),
    "models": [],
    "activations": _SPLIT("""mish glu hard_silu hard_swish hard_tanh log_sigmoid celu
        sparsemax squareplus soft_shrink hard_shrink tanh_shrink threshold sparse_plus
        sparse_sigmoid"""),
    "initializers": _SPLIT("""Orthogonal OrthogonalInitializer Identity
        IdentityInitializer STFT STFTInitializer orthogonal identity stft"""),
    "regularizers": _SPLIT("OrthogonalRegularizer orthogonal_regularizer"),
    "random": _SPLIT("beta gamma binomial"),
    "saving": _SPLIT("""CustomObjectScope custom_object_scope deserialize_keras_object
        get_custom_objects serialize_keras_object save_weights load_weights
        KerasFileEditor"""),
}

_WHY = {"applications": " (pretrained ImageNet models: xpnet has its own architectures, "
                        "without Keras's weights)",
        "keras": ""}


class NotInXpnet(NotImplementedError, AttributeError):
    """A Keras feature xpnet lacks: a NotImplementedError naming it, and an AttributeError
    too, so ``hasattr(keras.layers, "LSTM")`` is False rather than an exception."""


def missing(module, name):
    """NotImplementedError for a Keras 3 name xpnet lacks; AttributeError otherwise."""
    full = "keras" if module == "keras" else f"keras.{module}"
    if name in MISSING.get(module, ()):
        return NotInXpnet(f"{full}.{name} is not implemented in xpnet yet"
                                   f"{_WHY.get(module, '')}; see the compatibility table "
                                   "in xpnet's README")
    return AttributeError(f"module '{full}' has no attribute '{name}'")
